//! The world of one end-to-end test: the test bed held, the CRD installed, a namespace and a
//! cluster name of its own, the AWS clients, a VPC and the operator watching the namespace.
//!
//! ```ignore
//! let world = World::new("seed").vpc(10).operator().await;
//! world.seed("orders").apply();
//! wait_ready(&world.namespace, "orders", timeout);
//! ```

use std::sync::Arc;
use std::time::Duration;

use privateapi_operator::aws::RegionClients;

use super::manifest::PrivateApiManifest;
use serde_json::Value;

use super::{
    Operator, TestVpc, aws, create_namespace, delete_object, get_object, install_crd, list_objects,
    make_vpc, owned_resources, patch_spec, poke_and_wait, require_testbed, unique, wait_for,
    wait_gone, wait_ready,
};

/// What a test's world is made of, before it is made.
#[must_use = "finish with .build(), .operator() or .operator_with(..)"]
pub struct WorldBuilder {
    prefix: String,
    cluster_prefix: String,
    vpc: Option<u8>,
}

/// A test's namespace, cluster name, AWS clients, VPC and operator. Dropping it stops the
/// operator.
pub struct World {
    pub namespace: String,
    pub cluster: String,
    pub aws: Arc<RegionClients>,
    vpc: Option<TestVpc>,
    operator: Option<Operator>,
}

impl World {
    /// A world whose namespace is `unique(prefix)` and cluster `unique("cl")`.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(prefix: &str) -> WorldBuilder {
        WorldBuilder {
            prefix: prefix.to_string(),
            cluster_prefix: "cl".to_string(),
            vpc: None,
        }
    }

    /// The VPC asked for with [`WorldBuilder::vpc`].
    pub fn vpc(&self) -> &TestVpc {
        self.vpc
            .as_ref()
            .expect("no VPC in this world: World::new(..).vpc(octet)")
    }

    /// The operator started with the world or by [`World::start_operator`].
    pub fn operator(&self) -> &Operator {
        self.operator.as_ref().expect("no operator in this world")
    }

    pub fn operator_mut(&mut self) -> &mut Operator {
        self.operator.as_mut().expect("no operator in this world")
    }

    /// Start the operator (watching the namespace, the world's cluster name) with `extra` flags.
    pub fn start_operator_with(&mut self, extra: &[&str]) {
        let operator = Operator::start_with(&self.namespace, &self.cluster, extra);
        self.set_operator(operator);
    }

    /// Start the operator inside `network` of the test bed ([`Operator::start_in`]).
    pub fn start_operator_in(&mut self, network: super::netns::From, extra: &[&str]) {
        let operator = Operator::start_in(&self.namespace, &self.cluster, network, extra);
        self.set_operator(operator);
    }

    pub fn start_operator(&mut self) {
        self.start_operator_with(&[]);
    }

    /// Stop the operator (its AWS calls are recorded, as on any drop).
    pub fn stop_operator(&mut self) {
        drop(self.operator.take());
    }

    /// Another VPC (10.`second_octet`.0.0/16), besides the world's.
    pub async fn make_vpc(&self, second_octet: u8) -> TestVpc {
        make_vpc(&self.aws.ec2, second_octet).await
    }

    /// The reference stack's manifest for `name` in the world's namespace and VPC.
    pub fn seed(&self, name: &str) -> PrivateApiManifest {
        PrivateApiManifest::seed(&self.namespace, name, self.vpc())
    }

    /// A manifest for `name` in the world's namespace on the existing endpoint `vpce`.
    pub fn referencing(&self, name: &str, vpce: &str) -> PrivateApiManifest {
        PrivateApiManifest::referencing(&self.namespace, name, vpce)
    }

    /// The object `name` of the world's namespace, as JSON.
    pub fn get(&self, name: &str) -> Option<Value> {
        get_object(&self.namespace, name)
    }

    /// The world's objects, as JSON.
    pub fn list(&self) -> Vec<Value> {
        list_objects(&self.namespace)
    }

    /// [`wait_for`] in the world's namespace.
    pub fn wait_for(
        &self,
        name: &str,
        timeout: Duration,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        wait_for(&self.namespace, name, timeout, what, check)
    }

    /// [`wait_ready`] in the world's namespace.
    pub fn wait_ready(&self, name: &str, timeout: Duration) -> Value {
        wait_ready(&self.namespace, name, timeout)
    }

    /// [`patch_spec`] in the world's namespace.
    pub fn patch(&self, name: &str, patch: Value) {
        patch_spec(&self.namespace, name, patch);
    }

    /// [`poke_and_wait`] with the world's operator.
    pub fn poke(&self, name: &str) {
        poke_and_wait(self.operator(), &self.namespace, name);
    }

    /// What AWS holds of the world's cluster ([`owned_resources`]).
    pub async fn owned_resources(&self) -> Vec<(String, String)> {
        owned_resources(&self.aws, &self.cluster).await
    }

    /// `kubectl delete` the object, without waiting.
    pub fn delete(&self, name: &str) {
        delete_object(&self.namespace, name);
    }

    /// Wait until the object is gone.
    pub fn wait_gone(&self, name: &str, timeout: Duration) {
        wait_gone(&self.namespace, name, timeout);
    }

    /// Run `operator`, started elsewhere (e.g. behind a fault proxy), as the world's.
    pub fn set_operator(&mut self, operator: Operator) {
        assert!(self.operator.is_none(), "the world's operator already runs");
        self.operator = Some(operator);
    }

    /// Delete the object and wait until it is gone.
    pub fn delete_and_wait(&self, name: &str, timeout: Duration) {
        self.delete(name);
        wait_gone(&self.namespace, name, timeout);
    }
}

impl WorldBuilder {
    /// A VPC 10.`second_octet`.0.0/16 of the test's own ([`make_vpc`]).
    pub fn vpc(mut self, second_octet: u8) -> Self {
        self.vpc = Some(second_octet);
        self
    }

    /// The cluster name is `unique(prefix)` (default `cl`).
    pub fn cluster_prefix(mut self, prefix: &str) -> Self {
        self.cluster_prefix = prefix.to_string();
        self
    }

    /// The world, without an operator yet.
    pub async fn build(self) -> World {
        require_testbed();
        install_crd();
        let namespace = unique(&self.prefix);
        let cluster = unique(&self.cluster_prefix);
        create_namespace(&namespace);
        let aws = aws().await;
        let vpc = match self.vpc {
            Some(octet) => Some(make_vpc(&aws.ec2, octet).await),
            None => None,
        };
        World {
            namespace,
            cluster,
            aws,
            vpc,
            operator: None,
        }
    }

    /// The world with its operator running.
    pub async fn operator(self) -> World {
        self.operator_with(&[]).await
    }

    /// The world with its operator running with `extra` flags.
    pub async fn operator_with(self, extra: &[&str]) -> World {
        let mut world = self.build().await;
        world.start_operator_with(extra);
        world
    }
}
