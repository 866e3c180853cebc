//! The catalogue of attack scenarios: each one's name, the rule it must
//! raise and the clouds it can be planted on. Tests hold the rule pack to
//! this list; `attacks` writes the scenarios' records.

use crate::event::model::Provider;

/// The attack scenarios: (scenario name, id of the rule it must raise,
/// one-line description). The last three target the stateful rules
/// (`new-user-high-risk-api`, `idle-key-reused`, `denied-call-burst`), which
/// need events evaluated in time order with engine state.
pub const SCENARIOS: &[(&str, &str, &str)] = &[
    (
        "root_key_high_risk",
        "root-key-high-risk-api",
        "The root (main-account) access key, used from a script, lists access keys and creates and deletes a user.",
    ),
    (
        "sdk_high_risk_write",
        "non-console-high-risk-api",
        "A sub-user's key makes high-risk changes through the SDK: a role policy and trust policy (AWS, Tencent), instance user data (Tencent, Huawei), an agency (Huawei).",
    ),
    (
        "access_key_created",
        "access-key-created",
        "A second access key is created for an existing user (CreateAccessKey, Huawei createCredential).",
    ),
    (
        "admin_policy_attached",
        "admin-policy-attached",
        "The administrator policy is attached to a user (AWS AdministratorAccess, Tencent policy id 1).",
    ),
    (
        "off_hours_deletion",
        "off-hours-sensitive-operation",
        "Instances and a bucket are deleted between 02:00 and 04:00 Asia/Shanghai (TerminateInstances, DeleteBucket, deleteServer, deleteBucket).",
    ),
    (
        "github_hook_leaked_key",
        "github-webhook-egress-call",
        "A key leaked on GitHub is tried from GitHub's webhook egress addresses (GetCallerIdentity, DescribeInstances, listServersDetails).",
    ),
    (
        "hacker_tool_agent",
        "hacker-tool-user-agent",
        "A stolen AWS key is exercised with aws-cli on Kali Linux, or validated by TruffleHog.",
    ),
    (
        "cos_browser",
        "cos-browser-api-call",
        "A Tencent key is loaded into COS Browser, which lists buckets and objects.",
    ),
    (
        "remote_command",
        "remote-command-execution",
        "Commands are pushed to instances through Tencent TAT (RunCommand, InvokeCommand), AWS SSM SendCommand or Huawei COC ExecuteScript.",
    ),
    (
        "api_resource_created",
        "resource-created-via-api",
        "A key never seen before starts large instances or a database through the API (RunInstances, CreateDBInstance, createServer, createInstance).",
    ),
    (
        "instance_credentials_stolen",
        "instance-credentials-used-elsewhere",
        "An EC2 instance role's session credentials, taken from the metadata service, are used from an attacker's address after the instance's own calls (GetCallerIdentity, ListBuckets, ListRoles).",
    ),
    (
        "new_user_high_risk",
        "new-user-high-risk-api",
        "A user is created and given an access key; within hours that new user's key calls high-risk APIs.",
    ),
    (
        "idle_key_reused",
        "idle-key-reused",
        "A key used once goes silent for 45 days, then calls APIs again (planted only when the span allows it).",
    ),
    (
        "denied_call_burst",
        "denied-call-burst",
        "One key makes a burst of twelve denied calls within five minutes (AccessDenied, UnauthorizedOperation, AuthFailure, CTS warning 403).",
    ),
];

/// Clouds each scenario (same order as [`SCENARIOS`]) can be planted on.
pub(super) const SCENARIO_CLOUDS: &[&[Provider]] = &[
    &Provider::ALL,
    &Provider::ALL,
    &Provider::ALL,
    &[Provider::Aws, Provider::Tencent],
    &Provider::ALL,
    &Provider::ALL,
    &[Provider::Aws],
    &[Provider::Tencent],
    &Provider::ALL,
    &Provider::ALL,
    &[Provider::Aws],
    &Provider::ALL,
    &Provider::ALL,
    &Provider::ALL,
];

/// The clouds a scenario can be planted on (`None` for an unknown name).
pub fn scenario_clouds(name: &str) -> Option<&'static [Provider]> {
    SCENARIOS
        .iter()
        .position(|(scenario, _, _)| *scenario == name)
        .map(|index| SCENARIO_CLOUDS[index])
}
