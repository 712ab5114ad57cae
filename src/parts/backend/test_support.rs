//! What the unit tests of the backend share.

use crate::identity::Owner;

pub(super) fn owner() -> Owner {
    Owner {
        cluster: "dev".into(),
        namespace: "team-a".into(),
        name: "orders".into(),
        uid: "uid-1".into(),
    }
}
