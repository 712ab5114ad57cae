//! What the unit tests of the part's modules share.

use std::collections::BTreeSet;

use super::LiveEndpoint;
use crate::crd::CreateEndpointSpec;

pub(super) fn spec() -> CreateEndpointSpec {
    CreateEndpointSpec {
        vpc_id: "vpc-1".into(),
        subnet_ids: vec!["subnet-a".into(), "subnet-b".into()],
        private_dns: true,
        allowed_cidrs: vec!["10.0.0.0/16".into(), "2001:DB8:0::/48".into()],
        allowed_security_group_ids: vec!["sg-client".into()],
        security_group_ids: vec!["sg-extra".into()],
    }
}

pub(super) fn live_endpoint(id: &str) -> LiveEndpoint {
    LiveEndpoint {
        id: id.into(),
        vpc_id: "vpc-1".into(),
        service_name: "com.amazonaws.us-east-1.execute-api".into(),
        endpoint_type: "Interface".into(),
        state: "available".into(),
        subnet_ids: BTreeSet::from(["subnet-a".to_string(), "subnet-b".to_string()]),
        security_group_ids: BTreeSet::from(["sg-managed".to_string(), "sg-extra".to_string()]),
        private_dns: true,
        ..Default::default()
    }
}
