-- Argo CD health check of privateapi.io/v1alpha1 PrivateApi objects, for argocd-cm's
-- resource.customizations.health.privateapi.io_PrivateApi (see argocd-cm-patch.yaml).
--
--   Healthy      Ready=True for the current generation.
--   Progressing  no status or no Ready yet; status.observedGeneration (or Ready's) behind
--                metadata.generation; Ready=False while AWS works (Creating, Updating, Pending,
--                DependencyNotReady, Throttled) or after a transient error; deleting.
--   Degraded     Ready=False with reason InvalidSpec (the manifest must change) or
--                OperatorMisconfigured; or a persistent AWS error: reason AwsError or
--                KubernetesError while Ready has been False for PERSISTENT_AFTER_SECONDS.
--
-- Argo CD runs this with gopher-lua (Lua 5.1) and only the base, table and a "safe" os library
-- (os.time, os.date): there is no string library, so nothing here calls string functions.
-- tests/argocd_health.rs runs health_test.yaml and the real operator's objects through it.

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

-- Ready has been False since before now - PERSISTENT_AFTER_SECONDS. Kubernetes writes times as
-- RFC 3339 UTC with second precision ("2026-01-02T03:04:05Z"), which order as strings.
local function persistent(c)
  if c.lastTransitionTime == nil then
    return false
  end
  local cutoff = os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() - PERSISTENT_AFTER_SECONDS)
  return c.lastTransitionTime <= cutoff
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
  hs.status = "Healthy"
  hs.message = ready.message
  if obj.status.url ~= nil then
    hs.message = hs.message .. ": " .. obj.status.url
  end
  return hs
end

if ready.reason == "InvalidSpec" or ready.reason == "OperatorMisconfigured" then
  hs.status = "Degraded"
  hs.message = describe(ready)
  return hs
end

if (ready.reason == "AwsError" or ready.reason == "KubernetesError") and persistent(ready) then
  hs.status = "Degraded"
  hs.message = describe(ready) .. " (not Ready for over " .. PERSISTENT_AFTER_SECONDS .. " s)"
  return hs
end

hs.status = "Progressing"
hs.message = describe(ready)
return hs
