//! One call as the generator thinks of it — who, with which key, from where,
//! doing what — before a renderer gives it its cloud's own record shape.
//! Ordinary traffic and attack scenarios both build these.

use serde_json::Value;

use crate::event::model::Provider;

use super::organisation::Person;

/// How the call reached the cloud.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Method {
    Api,
    Console,
    System,
}

/// Who made the call.
#[derive(Clone, Debug)]
pub(super) enum Who {
    Root,
    User(Person),
    /// A role (AWS) or agency (Huawei) session.
    Role {
        role: Person,
        session: String,
    },
    /// A cloud service acting on its own (AWS `invokedBy`; Huawei: no user).
    Service(String),
}

/// What the call did, before the cloud's own shape is applied.
#[derive(Clone, Debug)]
pub(super) struct Op {
    /// AWS: first label of `eventSource`; Tencent: product; Huawei: lower-case `service_type`.
    pub(super) service: &'static str,
    pub(super) action: String,
    pub(super) read_only: bool,
    pub(super) request: Value,
    pub(super) response: Value,
    pub(super) resource_type: String,
    pub(super) resource_name: String,
    pub(super) resource_id: String,
    /// Extra top-level fields (AWS `resources`, `additionalEventData` …).
    pub(super) extra: Vec<(&'static str, Value)>,
}

impl Op {
    pub(super) fn new(service: &'static str, action: &str, read_only: bool) -> Op {
        Op {
            service,
            action: action.to_string(),
            read_only,
            request: Value::Null,
            response: Value::Null,
            resource_type: String::new(),
            resource_name: String::new(),
            resource_id: String::new(),
            extra: Vec::new(),
        }
    }

    pub(super) fn request(mut self, request: Value) -> Op {
        self.request = request;
        self
    }

    pub(super) fn response(mut self, response: Value) -> Op {
        self.response = response;
        self
    }

    pub(super) fn resource(mut self, kind: &str, name: &str, id: &str) -> Op {
        self.resource_type = kind.to_string();
        self.resource_name = name.to_string();
        self.resource_id = id.to_string();
        self
    }

    pub(super) fn extra(mut self, key: &'static str, value: Value) -> Op {
        self.extra.push((key, value));
        self
    }
}

/// One call, ready to be rendered in its cloud's shape.
#[derive(Clone, Debug)]
pub(super) struct Call {
    pub(super) provider: Provider,
    /// Epoch milliseconds; the record keeps whole seconds.
    pub(super) time_ms: i64,
    /// Index into the cloud's accounts in the organisation.
    pub(super) account: usize,
    pub(super) who: Who,
    /// The signing key; none for a cloud service acting on its own.
    pub(super) key: Option<String>,
    pub(super) ip: String,
    pub(super) agent: String,
    pub(super) region: String,
    pub(super) method: Method,
    pub(super) op: Op,
    /// Refused for lack of permission: the renderer writes the cloud's error.
    pub(super) denied: bool,
    /// Signed in with MFA (console sign-ins and sessions).
    pub(super) mfa: bool,
}

impl Call {
    /// A call with no key, address, agent or region yet: an API call that succeeded.
    pub(super) fn new(provider: Provider, time_ms: i64, account: usize, who: Who, op: Op) -> Call {
        Call {
            provider,
            time_ms,
            account,
            who,
            key: None,
            ip: String::new(),
            agent: String::new(),
            region: String::new(),
            method: Method::Api,
            op,
            denied: false,
            mfa: false,
        }
    }
}
