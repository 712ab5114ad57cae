//! PrivateApi manifests built from the operator's own CRD types (`privateapi_operator::crd`), so
//! the field names are the CRD's: `PrivateApiManifest::seed(&namespace, "orders", &vpc)` is the
//! reference stack's shape, and chained methods change what a test varies.
//!
//! Fields with a schema default (`stageName`, `deletionPolicy`, `backend.memoryMiB`,
//! `backend.timeoutSeconds`, `backend.builtin.message`, `endpoint.create.privateDns`) are written
//! only when the builder set them: otherwise the manifest leaves them out and the API server's
//! defaults apply, as for a user who does not write them.

use std::collections::{BTreeMap, BTreeSet};

use privateapi_operator::crd::{
    AdoptSpec, Architecture, BackendSpec, BuiltinBackend, CodeBackend, CreateEndpointSpec,
    DEFAULT_BUILTIN_MESSAGE, DEFAULT_MEMORY_MIB, DEFAULT_STAGE_NAME, DEFAULT_TIMEOUT_SECONDS,
    DeletionPolicy, DomainSpec, EndpointSpec, PrivateApi, PrivateApiSpec, ProbeSpec,
};
use serde_json::Value;

use super::{REGION, TestVpc};

/// A field with a schema default, written out only when set explicitly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Defaulted {
    StageName,
    DeletionPolicy,
    MemoryMiB,
    TimeoutSeconds,
    BuiltinMessage,
    PrivateDns,
}

impl Defaulted {
    /// Where the field is in the object (a JSON pointer: parent, key).
    fn location(self) -> (&'static str, &'static str) {
        match self {
            Defaulted::StageName => ("/spec", "stageName"),
            Defaulted::DeletionPolicy => ("/spec", "deletionPolicy"),
            Defaulted::MemoryMiB => ("/spec/backend", "memoryMiB"),
            Defaulted::TimeoutSeconds => ("/spec/backend", "timeoutSeconds"),
            Defaulted::BuiltinMessage => ("/spec/backend/builtin", "message"),
            Defaulted::PrivateDns => ("/spec/endpoint/create", "privateDns"),
        }
    }

    const ALL: [Defaulted; 6] = [
        Defaulted::StageName,
        Defaulted::DeletionPolicy,
        Defaulted::MemoryMiB,
        Defaulted::TimeoutSeconds,
        Defaulted::BuiltinMessage,
        Defaulted::PrivateDns,
    ];
}

/// A `PrivateApi` object being built: metadata, the typed spec, and which defaulted fields the
/// test set.
#[derive(Clone, Debug)]
pub struct PrivateApiManifest {
    namespace: String,
    name: String,
    labels: BTreeMap<String, String>,
    spec: PrivateApiSpec,
    explicit: BTreeSet<Defaulted>,
}

impl PrivateApiManifest {
    /// The least a spec holds: no region, no endpoint yet, a builtin backend with its defaults.
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.to_string(),
            name: name.to_string(),
            labels: BTreeMap::new(),
            spec: PrivateApiSpec {
                region: None,
                endpoint: EndpointSpec::default(),
                additional_vpc_endpoint_ids: Vec::new(),
                backend: BackendSpec {
                    builtin: Some(BuiltinBackend::default()),
                    function_arn: None,
                    code: None,
                    execution_role_arn: None,
                    architecture: None,
                    memory_mib: DEFAULT_MEMORY_MIB,
                    timeout_seconds: DEFAULT_TIMEOUT_SECONDS,
                    environment: None,
                },
                stage_name: DEFAULT_STAGE_NAME.to_string(),
                description: None,
                tags: BTreeMap::new(),
                deletion_policy: DeletionPolicy::default(),
                adopt: None,
                probe: None,
                domain: None,
            },
            explicit: BTreeSet::new(),
        }
    }

    /// A spec only (the parts' tests hand a `PrivateApiSpec` to a part: no object).
    pub fn unnamed() -> Self {
        Self::new("", "")
    }

    /// The reference stack: us-east-1, the operator creates the endpoint in `vpc` (its subnets,
    /// private DNS, HTTPS from the client group), the builtin backend with the reference
    /// message on x86_64 with 256 MiB, stage `prod`, tag `team: test`.
    pub fn seed(namespace: &str, name: &str, vpc: &TestVpc) -> Self {
        Self::new(namespace, name)
            .region(REGION)
            .endpoint_create(vpc)
            .builtin(DEFAULT_BUILTIN_MESSAGE)
            .architecture(Architecture::X86_64)
            .memory_mib(DEFAULT_MEMORY_MIB)
            .stage_name(DEFAULT_STAGE_NAME)
            .tag("team", "test")
    }

    /// An API on an existing endpoint (`endpoint.id`): us-east-1, the builtin backend with the
    /// reference message on x86_64, stage `prod`; no tags.
    pub fn referencing(namespace: &str, name: &str, vpce: &str) -> Self {
        Self::new(namespace, name)
            .region(REGION)
            .endpoint_id(vpce)
            .builtin(DEFAULT_BUILTIN_MESSAGE)
            .architecture(Architecture::X86_64)
            .stage_name(DEFAULT_STAGE_NAME)
    }

    // ---- metadata

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.to_string(), value.to_string());
        self
    }

    // ---- spec

    pub fn region(mut self, region: &str) -> Self {
        self.spec.region = Some(region.to_string());
        self
    }

    /// `endpoint.create` in `vpc`: all its subnets, private DNS on, HTTPS from its client group
    /// (replaces `endpoint.id`).
    pub fn endpoint_create(mut self, vpc: &TestVpc) -> Self {
        self.spec.endpoint = EndpointSpec {
            id: None,
            create: Some(CreateEndpointSpec {
                vpc_id: vpc.vpc_id.clone(),
                subnet_ids: vpc.subnet_ids.clone(),
                private_dns: true,
                allowed_cidrs: Vec::new(),
                allowed_security_group_ids: vec![vpc.client_sg_id.clone()],
                security_group_ids: Vec::new(),
            }),
        };
        self.explicit.insert(Defaulted::PrivateDns);
        self
    }

    /// `endpoint.id` (replaces `endpoint.create`).
    pub fn endpoint_id(mut self, vpce: &str) -> Self {
        self.spec.endpoint = EndpointSpec {
            id: Some(vpce.to_string()),
            create: None,
        };
        self.explicit.remove(&Defaulted::PrivateDns);
        self
    }

    fn create(&mut self) -> &mut CreateEndpointSpec {
        self.spec
            .endpoint
            .create
            .as_mut()
            .expect("endpoint.create: call endpoint_create first")
    }

    pub fn vpc_id(mut self, vpc_id: &str) -> Self {
        self.create().vpc_id = vpc_id.to_string();
        self
    }

    pub fn subnets<S: ToString>(mut self, subnets: impl IntoIterator<Item = S>) -> Self {
        self.create().subnet_ids = strings(subnets);
        self
    }

    pub fn private_dns(mut self, on: bool) -> Self {
        self.create().private_dns = on;
        self.explicit.insert(Defaulted::PrivateDns);
        self
    }

    pub fn allowed_cidrs<S: ToString>(mut self, cidrs: impl IntoIterator<Item = S>) -> Self {
        self.create().allowed_cidrs = strings(cidrs);
        self
    }

    pub fn allowed_security_groups<S: ToString>(
        mut self,
        groups: impl IntoIterator<Item = S>,
    ) -> Self {
        self.create().allowed_security_group_ids = strings(groups);
        self
    }

    pub fn security_groups<S: ToString>(mut self, groups: impl IntoIterator<Item = S>) -> Self {
        self.create().security_group_ids = strings(groups);
        self
    }

    pub fn additional_endpoints<S: ToString>(mut self, ids: impl IntoIterator<Item = S>) -> Self {
        self.spec.additional_vpc_endpoint_ids = strings(ids);
        self
    }

    /// The builtin backend answering `message` (replaces `functionArn` or `code`).
    pub fn builtin(mut self, message: &str) -> Self {
        self.spec.backend.builtin = Some(BuiltinBackend {
            message: message.to_string(),
        });
        self.spec.backend.function_arn = None;
        self.spec.backend.code = None;
        self.explicit.insert(Defaulted::BuiltinMessage);
        self
    }

    /// The builtin backend with its default message left out (`builtin: {}`).
    pub fn builtin_default(mut self) -> Self {
        self = self.builtin(DEFAULT_BUILTIN_MESSAGE);
        self.explicit.remove(&Defaulted::BuiltinMessage);
        self
    }

    /// An existing function: the backend is `functionArn` alone (what only applies to the
    /// operator's own functions goes).
    pub fn function_arn(mut self, arn: &str) -> Self {
        let backend = &mut self.spec.backend;
        backend.builtin = None;
        backend.code = None;
        backend.function_arn = Some(arn.to_string());
        backend.execution_role_arn = None;
        backend.architecture = None;
        backend.environment = None;
        backend.memory_mib = DEFAULT_MEMORY_MIB;
        backend.timeout_seconds = DEFAULT_TIMEOUT_SECONDS;
        for field in [
            Defaulted::BuiltinMessage,
            Defaulted::MemoryMiB,
            Defaulted::TimeoutSeconds,
        ] {
            self.explicit.remove(&field);
        }
        self
    }

    /// A deployment package in S3 (replaces `builtin` or `functionArn`).
    pub fn code(mut self, code: CodeBackend) -> Self {
        self.spec.backend.builtin = None;
        self.spec.backend.function_arn = None;
        self.spec.backend.code = Some(code);
        self.explicit.remove(&Defaulted::BuiltinMessage);
        self
    }

    pub fn architecture(mut self, architecture: Architecture) -> Self {
        self.spec.backend.architecture = Some(architecture);
        self
    }

    pub fn memory_mib(mut self, mib: i32) -> Self {
        self.spec.backend.memory_mib = mib;
        self.explicit.insert(Defaulted::MemoryMiB);
        self
    }

    pub fn execution_role_arn(mut self, arn: &str) -> Self {
        self.spec.backend.execution_role_arn = Some(arn.to_string());
        self
    }

    pub fn stage_name(mut self, stage: &str) -> Self {
        self.spec.stage_name = stage.to_string();
        self.explicit.insert(Defaulted::StageName);
        self
    }

    /// Set one tag (others stay).
    pub fn tag(mut self, key: &str, value: &str) -> Self {
        self.spec.tags.insert(key.to_string(), value.to_string());
        self
    }

    pub fn no_tags(mut self) -> Self {
        self.spec.tags.clear();
        self
    }

    pub fn deletion_policy(mut self, policy: DeletionPolicy) -> Self {
        self.spec.deletion_policy = policy;
        self.explicit.insert(Defaulted::DeletionPolicy);
        self
    }

    /// `spec.adopt`.
    pub fn adopt(mut self, adopt: AdoptSpec) -> Self {
        self.spec.adopt = Some(adopt);
        self
    }

    /// `spec.domain`: `name` with `certificate_arn`, published in `zone` when given.
    pub fn domain(mut self, name: &str, certificate_arn: &str, zone: Option<&str>) -> Self {
        self.spec.domain = Some(DomainSpec {
            name: name.to_string(),
            certificate_arn: certificate_arn.to_string(),
            base_path: None,
            hosted_zone_id: zone.map(str::to_string),
            security_policy: Default::default(),
        });
        self
    }

    /// `spec.probe`: `GET /` every `interval_seconds`, expecting 200, within 3 s.
    pub fn probe_every(mut self, interval_seconds: u32) -> Self {
        self.spec.probe = Some(ProbeSpec {
            interval_seconds,
            timeout_seconds: 3,
            ..ProbeSpec::default()
        });
        self
    }

    // ---- output

    /// The typed spec, as a part receives it (defaults filled in).
    pub fn typed_spec(&self) -> PrivateApiSpec {
        self.spec.clone()
    }

    /// The object as JSON: `apiVersion`, `kind`, `metadata`, `spec`; defaulted fields the test
    /// did not set are left out.
    pub fn json(&self) -> Value {
        let mut object = PrivateApi::new(&self.name, self.spec.clone());
        object.metadata.namespace = (!self.namespace.is_empty()).then(|| self.namespace.clone());
        object.metadata.labels = (!self.labels.is_empty()).then(|| self.labels.clone());
        let mut value = serde_json::to_value(&object).expect("a PrivateApi serializes");
        if let Some(map) = value.as_object_mut() {
            map.remove("status");
        }
        for field in Defaulted::ALL {
            if !self.explicit.contains(&field) {
                let (parent, key) = field.location();
                if let Some(map) = value.pointer_mut(parent).and_then(Value::as_object_mut) {
                    map.remove(key);
                }
            }
        }
        value
    }

    /// The spec as JSON, as [`json`](Self::json) writes it.
    pub fn spec_json(&self) -> Value {
        self.json()["spec"].clone()
    }

    pub fn yaml(&self) -> String {
        serde_yaml::to_string(&self.json()).expect("JSON serializes as YAML")
    }

    /// `kubectl apply` it.
    pub fn apply(&self) {
        super::apply(&self.yaml());
    }
}

fn strings<S: ToString>(items: impl IntoIterator<Item = S>) -> Vec<String> {
    items.into_iter().map(|s| s.to_string()).collect()
}

/// `spec.adopt` naming any of a REST API, a function, an endpoint.
pub fn adopt(
    rest_api_id: Option<&str>,
    function_name: Option<&str>,
    vpc_endpoint_id: Option<&str>,
) -> AdoptSpec {
    AdoptSpec {
        rest_api_id: rest_api_id.map(str::to_string),
        function_name: function_name.map(str::to_string),
        vpc_endpoint_id: vpc_endpoint_id.map(str::to_string),
    }
}
