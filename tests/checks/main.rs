//! Static checks, one test binary: the committed CRD and install manifests, the CRD's validation
//! as `kubectl` users meet it, the Dockerfile, the IAM policy, the REST API resource policy, and
//! the Argo CD health script.
//! Most need the test bed's API server (`make test`); none creates AWS resources of its own
//! except the IAM policy's walk.

#[path = "../support/mod.rs"]
mod support;

mod argocd_health;
mod crd_manifest;
mod crd_validation;
mod deploy_manifests;
mod dockerfile;
mod iam_policy;
mod resource_policy;
