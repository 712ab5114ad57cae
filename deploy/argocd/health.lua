-- Argo CD health check of privateapi.io/v1alpha1 PrivateApi objects, for argocd-cm's
-- resource.customizations.health.privateapi.io_PrivateApi (see argocd-cm-patch.yaml).
--
--   Healthy      Ready=True for the current generation (and Reachable not False: see Degraded).
--   Progressing  no status or no Ready yet; status.observedGeneration (or Ready's) behind
--                metadata.generation; Ready=False while AWS works (Creating, Updating, Pending,
--                DependencyNotReady, Throttled), after a transient error, or while a reference
--                (spec.backend.functionArn, spec.endpoint.id) names something that does not exist
--                yet (ReferenceNotFound: the operator retries); deleting.
--   Degraded     Ready=False with reason InvalidSpec (the manifest must change) or
--                OperatorMisconfigured; or a persistent error: reason AwsError, KubernetesError
--                or ReferenceNotFound while Ready has been False for PERSISTENT_AFTER_SECONDS;
--                or Ready=True but Reachable=False (spec.probe: the operator's own request to the
--                URL fails; its reason says why).
--
-- Argo CD runs this with gopher-lua (Lua 5.1) and only the package, base and table libraries and
-- a "safe" os (time, date) that only require("os") gives: the global os is nil, and there is no
-- string library (strings have no methods either), so nothing here calls string functions. Its
-- os.date formats a given time in the controller's local zone, "!" or not, so the cutoff for
-- "persistent" is computed here from os.time() (seconds since the epoch, the same in every zone).
-- (For an object being deleted Argo CD shows Progressing "Pending deletion" without running this.)
-- tests/checks/argocd_health.rs runs health_test.yaml and the real operator's objects through Argo CD's
-- interpreter (testbed/argocd-lua) and through Lua 5.1, in several time zones.

local os = require("os")

local PERSISTENT_AFTER_SECONDS = 300

local hs = {}

local function condition(conditions, type_)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == type_ then
      return c
    end
  end
  return nil
end

local function describe(c)
  if c.message ~= nil and c.message ~= "" then
    return c.reason .. ": " .. c.message
  end
  return c.reason
end

-- Floor division of integers (no math library).
local function div(a, b)
  return (a - a % b) / b
end

local function two_digits(n)
  if n < 10 then
    return "0" .. n
  end
  return "" .. n
end

-- A Unix time as RFC 3339 UTC ("2026-01-02T03:04:05Z", years 1000 to 9999), computed from the
-- number alone: the date from the days since 1970-01-01 by Howard Hinnant's civil_from_days.
local function utc_timestamp(t)
  local seconds = t % 86400
  local z = div(t, 86400) + 719468
  local day_of_era = z % 146097
  local era = div(z, 146097)
  local year_of_era = div(day_of_era - div(day_of_era, 1460) + div(day_of_era, 36524)
    - div(day_of_era, 146096), 365)
  local day_of_year = day_of_era - (365 * year_of_era + div(year_of_era, 4) - div(year_of_era, 100))
  local mp = div(5 * day_of_year + 2, 153)
  local day = day_of_year - div(153 * mp + 2, 5) + 1
  local month = mp + 3
  if mp >= 10 then
    month = mp - 9
  end
  local year = year_of_era + era * 400
  if month <= 2 then
    year = year + 1
  end
  return year .. "-" .. two_digits(month) .. "-" .. two_digits(day) .. "T"
    .. two_digits(div(seconds, 3600)) .. ":" .. two_digits(div(seconds % 3600, 60)) .. ":"
    .. two_digits(seconds % 60) .. "Z"
end

-- Ready has been False since before now - PERSISTENT_AFTER_SECONDS. Kubernetes writes times as
-- RFC 3339 UTC with second precision ("2026-01-02T03:04:05Z"), which order as strings.
local function persistent(c)
  if type(c.lastTransitionTime) ~= "string" then
    return false
  end
  return c.lastTransitionTime <= utc_timestamp(os.time() - PERSISTENT_AFTER_SECONDS)
end

local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end

if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "Deleting: the operator removes what it created in AWS"
  if obj.status ~= nil then
    local ready = condition(obj.status.conditions, "Ready")
    if ready ~= nil and ready.reason == "Deleting" then
      hs.message = describe(ready)
    end
  end
  return hs
end

if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to reconcile the object"
  return hs
end

local ready = condition(obj.status.conditions, "Ready")
if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Ready condition"
  return hs
end

if generation ~= nil then
  local observed = obj.status.observedGeneration
  if observed == nil or observed < generation
      or (ready.observedGeneration ~= nil and ready.observedGeneration < generation) then
    hs.status = "Progressing"
    hs.message = "Waiting for the operator to reconcile generation " .. generation
    return hs
  end
end

if ready.status == "True" then
  local reachable = condition(obj.status.conditions, "Reachable")
  if reachable ~= nil and reachable.status == "False" then
    hs.status = "Degraded"
    hs.message = "Ready, but the operator's probe fails: " .. describe(reachable)
    return hs
  end
  hs.status = "Healthy"
  hs.message = ready.message
  if obj.status.url ~= nil then
    hs.message = hs.message .. ": " .. obj.status.url
  end
  if reachable ~= nil and reachable.status == "True" and reachable.message ~= nil then
    hs.message = hs.message .. " (Reachable: " .. reachable.message .. ")"
  end
  return hs
end

if ready.reason == "InvalidSpec" or ready.reason == "OperatorMisconfigured" then
  hs.status = "Degraded"
  hs.message = describe(ready)
  return hs
end

if (ready.reason == "AwsError" or ready.reason == "KubernetesError"
    or ready.reason == "ReferenceNotFound") and persistent(ready) then
  hs.status = "Degraded"
  hs.message = describe(ready) .. " (not Ready for over " .. PERSISTENT_AFTER_SECONDS .. " s)"
  return hs
end

hs.status = "Progressing"
hs.message = describe(ready)
return hs
