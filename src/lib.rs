//! privateapi-operator: reconciles `PrivateApi` objects into private API Gateway REST APIs.
