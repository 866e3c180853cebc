//! Ordinary traffic: who calls, how and from where, shaped so that the
//! default rule pack rates none of it medium or high (see the module header
//! of `synth`). Each cloud has its own mix — AWS mostly role sessions, CTS
//! few reads — and writes happen in working hours only. What the calls do
//! is in `traffic_ops`.

use std::sync::Arc;

use serde_json::json;

use crate::event::model::Provider;

use super::agents::{BROWSERS, TENCENT_CONSOLE_AGENT, agent};
use super::call::{Call, Method, Op, Who};
use super::generator::{FAILURE_RATE, Generator};
use super::organisation::{
    Account, INSTANCE_ROLE, Person, instance_egress_ip, role_session, role_session_key, session_key,
};
use super::random::{B62, Rng, hash_text};
use super::timeline::{HOUR_MS, aws_display_time, utc, working_hours};

impl Generator {
    /// One ordinary call at `time_ms`, drawn from its cloud's mix for the
    /// time of day (no writes outside working hours).
    pub(super) fn ordinary_call(&mut self, provider: Provider, time_ms: i64) -> Call {
        let working = working_hours(time_ms);
        let roll = self.rng.unit();
        match provider {
            Provider::Aws => {
                // Most AWS API traffic comes from role sessions.
                if working {
                    match roll {
                        r if r < 0.19 => self.api_read(provider, time_ms),
                        r if r < 0.25 => self.ci_assume_role(time_ms),
                        r if r < 0.52 => self.role_call(provider, time_ms, false),
                        r if r < 0.62 => self.console_read(provider, time_ms),
                        r if r < 0.66 => self.console_login(provider, time_ms),
                        r if r < 0.77 => self.service_event(provider, time_ms),
                        r if r < 0.84 => self.api_write(provider, time_ms),
                        r if r < 0.93 => self.role_call(provider, time_ms, true),
                        _ => self.console_write(provider, time_ms),
                    }
                } else {
                    match roll {
                        r if r < 0.30 => self.api_read(provider, time_ms),
                        r if r < 0.36 => self.ci_assume_role(time_ms),
                        r if r < 0.76 => self.role_call(provider, time_ms, false),
                        _ => self.service_event(provider, time_ms),
                    }
                }
            }
            Provider::Tencent => {
                if working {
                    match roll {
                        r if r < 0.45 => self.api_read(provider, time_ms),
                        r if r < 0.70 => self.console_read(provider, time_ms),
                        r if r < 0.75 => self.console_login(provider, time_ms),
                        r if r < 0.87 => self.api_write(provider, time_ms),
                        _ => self.console_write(provider, time_ms),
                    }
                } else {
                    self.api_read(provider, time_ms)
                }
            }
            Provider::Huawei => {
                // CTS records few reads: mostly writes, sign-ins and system traces.
                if working {
                    match roll {
                        r if r < 0.10 => self.api_read(provider, time_ms),
                        r if r < 0.22 => self.console_login(provider, time_ms),
                        r if r < 0.32 => self.service_event(provider, time_ms),
                        r if r < 0.50 => self.role_call(provider, time_ms, true),
                        r if r < 0.75 => self.console_write(provider, time_ms),
                        _ => self.api_write(provider, time_ms),
                    }
                } else {
                    match roll {
                        r if r < 0.30 => self.api_read(provider, time_ms),
                        r if r < 0.60 => self.role_call(provider, time_ms, false),
                        _ => self.service_event(provider, time_ms),
                    }
                }
            }
        }
    }

    /// A read-only SDK / CLI call by a sub-user's long-term key.
    fn api_read(&mut self, provider: Provider, time_ms: i64) -> Call {
        let (account, user, key) = self.pool_key(provider);
        let region = self.region(provider, account);
        let op = self.read_op(provider, account, &region);
        let mut call = Call::new(provider, time_ms, account, Who::User(user.clone()), op);
        call.agent = agent(provider, user.tool, call.op.service, &call.op.action);
        call.ip = self.pool_ip();
        call.region = region;
        call.denied = self.rng.chance(FAILURE_RATE) && self.may_fail(Some(&key), time_ms);
        call.key = Some(key);
        call
    }

    /// A benign write by a sub-user's key, in working hours only.
    fn api_write(&mut self, provider: Provider, time_ms: i64) -> Call {
        let (account, user, key) = self.pool_key(provider);
        let region = self.region(provider, account);
        let op = self.write_op(provider, account, &region);
        let mut call = Call::new(provider, time_ms, account, Who::User(user.clone()), op);
        call.agent = agent(provider, user.tool, call.op.service, &call.op.action);
        call.ip = self.key_home_ip(&key);
        call.region = region;
        call.denied = self.rng.chance(FAILURE_RATE) && self.may_fail(Some(&key), time_ms);
        call.key = Some(key);
        call
    }

    /// A role (AWS) or agency (Huawei) session: reads at any time, writes in working hours.
    fn role_call(&mut self, provider: Provider, time_ms: i64, write: bool) -> Call {
        let org = Arc::clone(&self.org);
        let account = self.rng.index(org.accounts(provider).len());
        let holder = &org.accounts(provider)[account];
        if holder.roles.is_empty() {
            return self.api_read(provider, time_ms);
        }
        let role = self.rng.pick(&holder.roles).clone();
        let session = role_session(provider, holder, &role, time_ms);
        let region = self.region(provider, account);
        let op = if write {
            self.write_op(provider, account, &region)
        } else if provider == Provider::Aws && self.rng.chance(0.3) {
            // Applications decrypt their data keys all day long.
            self.kms_op(holder, &role, &region)
        } else {
            self.read_op(provider, account, &region)
        };
        let key = role_session_key(provider, holder, &role, &session, time_ms);
        // An instance's role session leaves from the instance's own address.
        let egress = (provider == Provider::Aws && role.name == INSTANCE_ROLE).then(|| instance_egress_ip(&session));
        let mut call = Call::new(
            provider,
            time_ms,
            account,
            Who::Role {
                role: role.clone(),
                session,
            },
            op,
        );
        call.agent = agent(provider, role.tool, call.op.service, &call.op.action);
        call.ip = if provider == Provider::Aws && self.rng.chance(0.6) {
            // From inside the VPC, through an endpoint.
            format!("10.20.{}.{}", self.rng.range(0, 15), self.rng.range(4, 250))
        } else if let Some(ip) = egress {
            ip
        } else {
            self.pool_ip()
        };
        call.region = region;
        call.denied = self.rng.chance(FAILURE_RATE) && self.may_fail(Some(&key), time_ms);
        call.key = Some(key);
        call
    }

    /// A CI job assumes its deployment role (AWS STS AssumeRole with a user key).
    fn ci_assume_role(&mut self, time_ms: i64) -> Call {
        let provider = Provider::Aws;
        let (account, user, key) = self.pool_key(provider);
        let org = Arc::clone(&self.org);
        let holder = &org.accounts(provider)[account];
        let role = holder.roles[self.rng.index(2)].clone();
        let session = role_session(provider, holder, &role, time_ms);
        let op = self.assume_role_op(holder, &role, &session, time_ms);
        let mut call = Call::new(provider, time_ms, account, Who::User(user.clone()), op);
        call.agent = agent(provider, user.tool, "sts", "AssumeRole");
        call.ip = self.pool_ip();
        call.region = self.region(provider, account);
        call.denied = self.rng.chance(FAILURE_RATE) && self.may_fail(Some(&key), time_ms);
        call.key = Some(key);
        call
    }

    /// STS AssumeRole, handing out the session key that session's calls use.
    fn assume_role_op(&mut self, holder: &Account, role: &Person, session: &str, time_ms: i64) -> Op {
        let session_arn = format!("arn:aws:sts::{}:assumed-role/{}/{}", holder.id, role.name, session);
        let role_arn = format!("arn:aws:iam::{}:role/{}", holder.id, role.name);
        let temporary = role_session_key(Provider::Aws, holder, role, session, time_ms);
        Op::new("sts", "AssumeRole", true)
            .request(json!({"roleArn": role_arn, "roleSessionName": session, "durationSeconds": 3600}))
            .response(json!({
                "credentials": {
                    "accessKeyId": temporary,
                    "sessionToken": session_token(&mut self.rng),
                    "expiration": aws_display_time(time_ms + HOUR_MS),
                },
                "assumedRoleUser": {
                    "assumedRoleId": format!("{}:{}", role.id, session),
                    "arn": session_arn,
                }
            }))
            .extra(
                "resources",
                json!([{"accountId": holder.id, "type": "AWS::IAM::Role", "ARN": role_arn}]),
            )
            .extra("sharedEventID", json!(self.rng.uuid()))
    }

    /// A person who uses the console: a sub-user, or now and then a Tencent root.
    fn human(&mut self, provider: Provider) -> (usize, Who) {
        let org = Arc::clone(&self.org);
        let account = self.rng.index(org.accounts(provider).len());
        let holder = &org.accounts(provider)[account];
        // Tencent main-account owners still use the console now and then.
        if provider == Provider::Tencent && self.rng.chance(0.08) {
            return (account, Who::Root);
        }
        let user = holder.users[*self.rng.pick(&holder.humans)].clone();
        (account, Who::User(user))
    }

    /// The temporary key of a console session (one per person per four hours).
    fn console_session_key(&mut self, provider: Provider, account: usize, who: &Who, time_ms: i64) -> String {
        let name = match who {
            Who::User(user) => user.name.as_str(),
            _ => "root",
        };
        let org = Arc::clone(&self.org);
        let holder = &org.accounts(provider)[account];
        session_key(
            provider,
            holder,
            &format!("console/{}/{name}/{}", holder.id, time_ms / (4 * HOUR_MS)),
        )
    }

    /// A console sign-in (or, on Huawei, sometimes a sign-out), from the office, with MFA.
    fn console_login(&mut self, provider: Provider, time_ms: i64) -> Call {
        let (account, who) = self.human(provider);
        let op = match provider {
            Provider::Aws => Op::new("signin", "ConsoleLogin", false),
            Provider::Tencent => Op::new("account", "ConsoleLogin", false),
            Provider::Huawei => {
                if self.rng.chance(0.85) {
                    Op::new("iam", "login", false)
                } else {
                    Op::new("iam", "logout", false)
                }
            }
        };
        let mut call = Call::new(provider, time_ms, account, who, op);
        call.method = Method::Console;
        call.agent = self.rng.pick(BROWSERS).to_string();
        call.ip = self.office_ip();
        call.region = self.org.accounts(provider)[account].regions[0].to_string();
        // The organisation enforces MFA for console sign-in.
        call.mfa = true;
        if let Who::User(user) = &call.who {
            let name = user.name.clone();
            if provider == Provider::Huawei {
                call.op.resource_type = "user".into();
            }
            call.op.resource_name = name;
        }
        call
    }

    fn console_read(&mut self, provider: Provider, time_ms: i64) -> Call {
        self.console_call(provider, time_ms, false)
    }

    fn console_write(&mut self, provider: Provider, time_ms: i64) -> Call {
        self.console_call(provider, time_ms, true)
    }

    /// A call by a person in the console, with MFA; writes may be denied.
    fn console_call(&mut self, provider: Provider, time_ms: i64, write: bool) -> Call {
        let (account, who) = self.human(provider);
        let region = self.region(provider, account);
        let op = if write {
            self.write_op(provider, account, &region)
        } else {
            self.read_op(provider, account, &region)
        };
        let key = self.console_session_key(provider, account, &who, time_ms);
        let mut call = Call::new(provider, time_ms, account, who, op);
        call.method = Method::Console;
        call.agent = match provider {
            Provider::Aws => "AWS Internal".to_string(),
            Provider::Tencent => TENCENT_CONSOLE_AGENT.to_string(),
            Provider::Huawei => self.rng.pick(BROWSERS).to_string(),
        };
        call.ip = self.office_ip();
        call.region = region;
        call.mfa = true;
        if write {
            call.denied = self.rng.chance(FAILURE_RATE) && self.may_fail(Some(&key), time_ms);
        }
        call.key = Some(key);
        call
    }

    /// A cloud service acting for the account (AWS service principals, Huawei system traces).
    fn service_event(&mut self, provider: Provider, time_ms: i64) -> Call {
        let org = Arc::clone(&self.org);
        let account = self.rng.index(org.accounts(provider).len());
        let holder = &org.accounts(provider)[account];
        let region = self.region(provider, account);
        match provider {
            Provider::Aws => {
                if self.rng.chance(0.9) {
                    let instance = self.rng.pick(&holder.instances).clone();
                    let role = holder.roles[2].clone();
                    let op = self.assume_role_op(holder, &role, &instance.id, time_ms);
                    let mut call = Call::new(provider, time_ms, account, Who::Service("ec2.amazonaws.com".into()), op);
                    call.method = Method::System;
                    call.region = region;
                    call
                } else {
                    let key_id = self.rng.uuid();
                    let op = Op::new("kms", "RotateKey", false)
                        .extra(
                            "resources",
                            json!([{
                                "accountId": holder.id,
                                "type": "AWS::KMS::Key",
                                "ARN": format!("arn:aws:kms:{region}:{}:key/{key_id}", holder.id),
                            }]),
                        )
                        .extra(
                            "additionalEventData",
                            json!({"keyId": format!("arn:aws:kms:{region}:{}:key/{key_id}", holder.id)}),
                        );
                    let mut call = Call::new(provider, time_ms, account, Who::Service("AWS Internal".into()), op);
                    call.method = Method::System;
                    call.region = region;
                    call
                }
            }
            _ => {
                // Huawei: CBR backup policies and auto-scaling run as system traces.
                let instance = self.rng.pick(&holder.instances).clone();
                let op = if self.rng.chance(0.7) {
                    let checkpoint = self.rng.uuid();
                    Op::new("cbr", "createBackup", false)
                        .request(json!({"checkpoint": {"parameters": {
                            "auto_trigger": true,
                            "incremental": true,
                            "name": format!("autobk_{}", &checkpoint[..8]),
                            "resources": [instance.id],
                        }}}))
                        .response(json!({"checkpoint": {
                            "id": checkpoint,
                            "status": "protecting",
                            "project_id": holder.project(&region),
                            "created_at": utc(time_ms).format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
                            "vault": {
                                "id": Rng::new(hash_text(&holder.id)).uuid(),
                                "name": format!("vault-{}-ecs", holder.name),
                                "resources": [{"id": instance.id, "name": instance.name, "type": "OS::Nova::Server", "protect_status": "available", "extra_info": "{}"}],
                                "skipped_resources": [],
                            },
                        }}))
                        .resource("backup", &format!("autobk_{}", &checkpoint[..8]), &checkpoint)
                } else {
                    Op::new("as", "executeScalingPolicy", false)
                        .request(json!({"action": "execute"}))
                        .resource("scaling_policy", "cpu-scale-out", &self.rng.uuid())
                };
                let mut call = Call::new(provider, time_ms, account, Who::Service(String::new()), op);
                call.method = Method::System;
                call.region = region;
                call
            }
        }
    }
}

/// An STS session token as AWS shows it (base64, several hundred characters).
fn session_token(rng: &mut Rng) -> String {
    let len = 600 + rng.index(40) * 4;
    format!("IQoJb3JpZ2luX2VjE{}", rng.chars(B62, len))
}
