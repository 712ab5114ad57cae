//! Conversions between the part's plain values and the EC2 SDK's types.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};

use crate::identity::{Owner, TAG_CLUSTER, TAG_OWNER};

pub(super) fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_string(),
                t.value().unwrap_or_default().to_string(),
            ))
        })
        .collect()
}

pub(super) fn filter<'v>(name: &str, values: impl IntoIterator<Item = &'v str>) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(values.into_iter().map(str::to_string).collect()))
        .build()
}

/// The filters for what `owner` tagged as its own. They are the server's: the answer is checked
/// for ownership too.
pub(super) fn ownership_filters(owner: &Owner) -> Vec<Filter> {
    vec![
        filter(&format!("tag:{TAG_CLUSTER}"), [owner.cluster.as_str()]),
        filter(&format!("tag:{TAG_OWNER}"), [owner.key().as_str()]),
    ]
}

pub(super) fn tag_specification(
    resource_type: ResourceType,
    tags: &BTreeMap<String, String>,
) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(resource_type)
        .set_tags(Some(sdk_tags(tags)))
        .build()
}

pub(super) fn sdk_tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}
