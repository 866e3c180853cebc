//! What ordinary calls do: per cloud, the benign reads (mostly listing and
//! describing) and writes (tags, start and stop, snapshots …) with the
//! request and response bodies each cloud records, chosen so that the
//! default rule pack rates none of them medium or high.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::event::model::Provider;

use super::call::Op;
use super::generator::Generator;
use super::organisation::{Account, Person};
use super::random::{B62, LOWER_ALNUM, Rng, hash_text};

impl Generator {
    /// A read-only call of the account's everyday kind.
    pub(super) fn read_op(&mut self, provider: Provider, account: usize, region: &str) -> Op {
        let org = Arc::clone(&self.org);
        let holder = &org.accounts(provider)[account];
        let instance = self.rng.pick(&holder.instances).clone();
        let bucket = self.rng.pick(&holder.buckets).clone();
        match provider {
            Provider::Aws => {
                const READS: &[&str] = &[
                    "ec2:DescribeInstances",
                    "ec2:DescribeInstances",
                    "ec2:DescribeInstances",
                    "ec2:DescribeSecurityGroups",
                    "ec2:DescribeVolumes",
                    "ec2:DescribeSubnets",
                    "s3:ListBuckets",
                    "s3:GetBucketLocation",
                    "s3:GetBucketPolicy",
                    "iam:ListUsers",
                    "iam:GetUser",
                    "iam:ListRoles",
                    "iam:ListAttachedRolePolicies",
                    "sts:GetCallerIdentity",
                    "sts:GetCallerIdentity",
                    "rds:DescribeDBInstances",
                    "lambda:ListFunctions20150331",
                    "monitoring:DescribeAlarms",
                    "monitoring:GetMetricData",
                    "logs:DescribeLogGroups",
                    "cloudtrail:DescribeTrails",
                    "kms:ListAliases",
                    "secretsmanager:GetSecretValue",
                ];
                let (service, action) = split_op(self.rng.pick(READS));
                let op = Op::new(service, action, true);
                match action {
                    "DescribeInstances" => {
                        if self.rng.chance(0.5) {
                            let ids: Vec<Value> = holder.instances.iter().take(3).map(|instance| json!({"instanceId": instance.id})).collect();
                            op.request(json!({"instancesSet": {"items": ids}, "filterSet": {}, "includeAllInstances": false}))
                        } else {
                            op.request(json!({
                                "instancesSet": {},
                                "filterSet": {"items": [
                                    {"name": "instance-state-name", "valueSet": {"items": [{"value": "running"}]}},
                                    {"name": "tag:cost-center", "valueSet": {"items": [{"value": holder.name}]}}
                                ]},
                                "maxResults": 1000
                            }))
                        }
                    }
                    "DescribeSecurityGroups" => op.request(json!({"securityGroupSet": {}, "securityGroupIdSet": {}, "filterSet": {}})),
                    "DescribeVolumes" => op.request(json!({"volumeSet": {}, "filterSet": {"items": [{"name": "attachment.instance-id", "valueSet": {"items": [{"value": instance.id}]}}]}})),
                    "DescribeSubnets" => op.request(json!({"subnetSet": {}, "filterSet": {}})),
                    "ListBuckets" => op
                        .request(json!({"Host": "s3.amazonaws.com"}))
                        .extra("additionalEventData", s3_extra(&mut self.rng)),
                    "GetBucketLocation" | "GetBucketPolicy" => {
                        let sub = if action == "GetBucketLocation" { "location" } else { "policy" };
                        op.request(json!({"bucketName": bucket, "Host": format!("{bucket}.s3.{region}.amazonaws.com"), sub: ""}))
                            .extra("additionalEventData", s3_extra(&mut self.rng))
                            .extra("resources", json!([{"accountId": holder.id, "type": "AWS::S3::Bucket", "ARN": format!("arn:aws:s3:::{bucket}")}]))
                    }
                    "ListUsers" => op.request(json!({"maxItems": 100})),
                    "GetUser" => {
                        let user = &self.rng.pick(&holder.users).name;
                        op.request(json!({"userName": user}))
                    }
                    "ListRoles" => op.request(json!({"maxItems": 1000, "pathPrefix": "/"})),
                    "ListAttachedRolePolicies" => {
                        let role = &self.rng.pick(&holder.roles).name;
                        op.request(json!({"roleName": role}))
                    }
                    "DescribeDBInstances" => op.request(json!({"dBInstanceIdentifier": self.rng.pick(&holder.databases)})),
                    "ListFunctions20150331" => op.request(json!({"functionVersion": "ALL", "maxItems": 50})),
                    "DescribeAlarms" => op.request(json!({"stateValue": "ALARM", "maxRecords": 100})),
                    "GetMetricData" => op.request(json!({
                        "metricDataQueries": [{"id": "cpu", "metricStat": {"metric": {"namespace": "AWS/EC2", "metricName": "CPUUtilization", "dimensions": [{"name": "InstanceId", "value": instance.id}]}, "period": 300, "stat": "Average"}, "returnData": true}],
                    })),
                    "DescribeLogGroups" => op.request(json!({"limit": 50, "logGroupNamePrefix": "/aws/lambda/"})),
                    "DescribeTrails" => op.request(json!({"includeShadowTrails": false})),
                    "ListAliases" => op.request(json!({"limit": 100})),
                    "GetSecretValue" => op.request(json!({"secretId": format!("prod/{}/db", holder.name)})),
                    _ => op,
                }
            }
            Provider::Tencent => {
                const READS: &[&str] = &[
                    "cvm:DescribeInstances",
                    "cvm:DescribeInstances",
                    "cvm:DescribeInstances",
                    "cvm:DescribeInstancesStatus",
                    "cvm:DescribeImages",
                    "cdb:DescribeDBInstances",
                    "vpc:DescribeVpcs",
                    "vpc:DescribeSecurityGroups",
                    "vpc:DescribeSubnets",
                    "clb:DescribeLoadBalancers",
                    "monitor:GetMonitorData",
                    "monitor:GetMonitorData",
                    "cam:ListUsers",
                    "cam:GetUser",
                    "sts:GetCallerIdentity",
                    "cbs:DescribeDisks",
                    "tag:DescribeResourceTagsByResourceIds",
                    "cloudaudit:LookUpEvents",
                ];
                let (service, action) = split_op(self.rng.pick(READS));
                let op = Op::new(service, action, true);
                match action {
                    "DescribeInstances" => {
                        if self.rng.chance(0.5) {
                            let ids: Vec<&str> = holder.instances.iter().take(3).map(|instance| instance.id.as_str()).collect();
                            let arns: Vec<String> = ids
                                .iter()
                                .map(|id| format!("qcs::cvm:{region}:uin/{}:instance/{id}", holder.uin))
                                .collect();
                            op.request(json!({"InstanceIds": ids, "Limit": 20, "Offset": 0}))
                                .extra("resources", json!(json!(arns).to_string()))
                        } else {
                            op.request(json!({"Limit": 100, "Offset": 0, "Filters": [
                                {"Name": "zone", "Values": [format!("{region}-3"), format!("{region}-6")]},
                                {"Name": "instance-charge-type", "Values": ["PREPAID", "POSTPAID_BY_HOUR"]},
                                {"Name": "tag:cost-center", "Values": [holder.name]}
                            ]}))
                        }
                    }
                    "DescribeInstancesStatus" => op.request(json!({"InstanceIds": [instance.id], "Limit": 20})).resource("cvm", &instance.id, ""),
                    "DescribeImages" => op.request(json!({"Filters": [{"Name": "image-type", "Values": ["PRIVATE_IMAGE"]}], "Limit": 50})),
                    "DescribeDBInstances" => {
                        let database = self.rng.pick(&holder.databases).clone();
                        op.request(json!({"InstanceIds": [database], "Limit": 20, "Offset": 0}))
                            .resource("cdb", &database, "")
                            .extra("resources", json!(json!([format!("qcs::cdb:{region}:uin/{}:instanceId/{database}", holder.uin)]).to_string()))
                    }
                    "DescribeVpcs" | "DescribeSubnets" | "DescribeSecurityGroups" => op.request(json!({"Limit": "100", "Offset": "0"})),
                    "DescribeLoadBalancers" => op.request(json!({"Limit": 20, "Offset": 0, "Forward": -1})),
                    "GetMonitorData" => {
                        let dimensions: Vec<Value> = holder
                            .instances
                            .iter()
                            .take(3)
                            .map(|instance| json!({"Dimensions": [{"Name": "InstanceId", "Value": instance.id}]}))
                            .collect();
                        op.request(json!({
                            "Namespace": "QCE/CVM",
                            "MetricName": *self.rng.pick(&["CPUUsage", "MemUsage", "LanOuttraffic"]),
                            "Period": 300,
                            "Instances": dimensions,
                        }))
                    }
                    "GetUser" => op.request(json!({"Name": self.rng.pick(&holder.users).name})),
                    "ListUsers" => op.resource("cam", "", "").request(json!({})),
                    "DescribeDisks" => op.request(json!({"Filters": [{"Name": "instance-id", "Values": [instance.id]}], "Limit": 20})),
                    "DescribeResourceTagsByResourceIds" => op.request(json!({"ServiceType": "cvm", "ResourcePrefix": "instance", "ResourceIds": [instance.id], "ResourceRegion": region})),
                    "LookUpEvents" => op.request(json!({"MaxResults": 50, "LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": "ConsoleLogin"}]})),
                    _ => op.request(json!({})),
                }
            }
            Provider::Huawei => {
                if self.rng.chance(0.7) {
                    Op::new("ecs", "listServersDetails", true)
                        .request(json!(""))
                        .resource("ecs", "", "")
                        .extra(
                            "resource_url",
                            json!(format!(
                                "https://ecs.{region}.myhuaweicloud.com/v1/{}/cloudservers/detail?limit=50&offset=1",
                                holder.project(region)
                            )),
                        )
                } else {
                    Op::new("ecs", "showServer", true)
                        .request(json!(""))
                        .resource("ecs", &instance.name, &instance.id)
                }
            }
        }
    }

    /// KMS Decrypt / GenerateDataKey by an application role.
    pub(super) fn kms_op(&mut self, holder: &Account, role: &Person, region: &str) -> Op {
        let key_arn = format!(
            "arn:aws:kms:{region}:{}:key/{}",
            holder.id,
            Rng::new(hash_text(&holder.id)).uuid()
        );
        let bucket = self.rng.pick(&holder.buckets).clone();
        let context = if role.name.starts_with("lambda") {
            json!({"aws:lambda:FunctionArn": format!("arn:aws:lambda:{region}:{}:function:{}-orders", holder.id, holder.name)})
        } else {
            json!({"aws:s3:arn": format!("arn:aws:s3:::{bucket}/exports/{}.parquet", self.rng.hex(12))})
        };
        let action = if self.rng.chance(0.7) {
            "Decrypt"
        } else {
            "GenerateDataKey"
        };
        let mut request = json!({"encryptionAlgorithm": "SYMMETRIC_DEFAULT", "encryptionContext": context});
        if action == "GenerateDataKey" {
            request =
                json!({"keyId": key_arn, "keySpec": "AES_256", "encryptionContext": request["encryptionContext"]});
        }
        Op::new("kms", action, true).request(request).extra(
            "resources",
            json!([{"accountId": holder.id, "type": "AWS::KMS::Key", "ARN": key_arn}]),
        )
    }

    /// A benign write: tags, start and stop, snapshots, alarms, names.
    pub(super) fn write_op(&mut self, provider: Provider, account: usize, region: &str) -> Op {
        let org = Arc::clone(&self.org);
        let holder = &org.accounts(provider)[account];
        let instance = self.rng.pick(&holder.instances).clone();
        let bucket = self.rng.pick(&holder.buckets).clone();
        let owner = self.rng.pick(&holder.users).name.clone();
        match provider {
            Provider::Aws => {
                const WRITES: &[&str] = &[
                    "ec2:CreateTags",
                    "ec2:CreateTags",
                    "ec2:StartInstances",
                    "ec2:StopInstances",
                    "ec2:CreateSnapshot",
                    "s3:PutBucketTagging",
                    "monitoring:PutMetricAlarm",
                    "autoscaling:UpdateAutoScalingGroup",
                    "logs:PutRetentionPolicy",
                ];
                let (service, action) = split_op(self.rng.pick(WRITES));
                let op = Op::new(service, action, false);
                let request_id = self.rng.uuid();
                match action {
                    "CreateTags" => op
                        .request(json!({"resourcesSet": {"items": [{"resourceId": instance.id}]}, "tagSet": {"items": [{"key": "owner", "value": owner}, {"key": "cost-center", "value": holder.name}]}}))
                        .response(json!({"requestId": request_id, "_return": true})),
                    "StartInstances" | "StopInstances" => {
                        let (from, to) = if action == "StartInstances" {
                            ((80, "stopped"), (0, "pending"))
                        } else {
                            ((16, "running"), (64, "stopping"))
                        };
                        op.request(json!({"instancesSet": {"items": [{"instanceId": instance.id}]}, "force": false}))
                            .response(json!({"requestId": request_id, "instancesSet": {"items": [{
                                "instanceId": instance.id,
                                "currentState": {"code": to.0, "name": to.1},
                                "previousState": {"code": from.0, "name": from.1}
                            }]}}))
                    }
                    "CreateSnapshot" => {
                        let volume = format!("vol-0{}", self.rng.hex(16));
                        op.request(json!({"volumeId": volume, "description": format!("nightly {}", instance.name)}))
                            .response(json!({"requestId": request_id, "snapshotId": format!("snap-0{}", self.rng.hex(16)), "volumeId": volume, "status": "pending", "volumeSize": 100, "encrypted": true}))
                    }
                    "PutBucketTagging" => op
                        .request(json!({"bucketName": bucket, "Host": format!("{bucket}.s3.{region}.amazonaws.com"), "tagging": ""}))
                        .extra("additionalEventData", s3_extra(&mut self.rng))
                        .extra("resources", json!([{"accountId": holder.id, "type": "AWS::S3::Bucket", "ARN": format!("arn:aws:s3:::{bucket}")}])),
                    "PutMetricAlarm" => op.request(json!({
                        "alarmName": format!("{}-cpu-high", instance.name),
                        "metricName": "CPUUtilization", "namespace": "AWS/EC2", "statistic": "Average",
                        "period": 300, "evaluationPeriods": 3, "threshold": 80.0,
                        "comparisonOperator": "GreaterThanThreshold",
                        "dimensions": [{"name": "InstanceId", "value": instance.id}]
                    })),
                    "UpdateAutoScalingGroup" => op.request(json!({"autoScalingGroupName": format!("{}-asg", holder.name), "minSize": 2, "maxSize": 8, "desiredCapacity": 3 + self.rng.range(0, 3)})),
                    "PutRetentionPolicy" => op.request(json!({"logGroupName": format!("/aws/lambda/{}-orders", holder.name), "retentionInDays": 90})),
                    _ => op,
                }
            }
            Provider::Tencent => {
                const WRITES: &[&str] = &[
                    "cvm:StartInstances",
                    "cvm:StopInstances",
                    "cdb:ModifyDBInstanceName",
                    "tag:AddResourceTag",
                    "tag:AddResourceTag",
                    "clb:ModifyLoadBalancerAttributes",
                    "cbs:CreateSnapshot",
                ];
                let (service, action) = split_op(self.rng.pick(WRITES));
                let op = Op::new(service, action, false);
                match action {
                    "StartInstances" => op.request(json!({"InstanceIds": [instance.id]})).resource("cvm", &instance.id, ""),
                    "StopInstances" => op.request(json!({"InstanceIds": [instance.id], "StopType": "SOFT", "StoppedMode": "KEEP_CHARGING"})).resource("cvm", &instance.id, ""),
                    "ModifyDBInstanceName" => {
                        let database = self.rng.pick(&holder.databases).clone();
                        op.request(json!({"InstanceId": database, "InstanceName": format!("{}-mysql-{}", holder.name, self.rng.range(1, 9))})).resource("cdb", &database, "")
                    }
                    "AddResourceTag" => op.request(json!({"TagKey": "owner", "TagValue": owner, "Resource": format!("qcs::cvm:{region}:uin/{}:instance/{}", holder.uin, instance.id)})),
                    "ModifyLoadBalancerAttributes" => op.request(json!({"LoadBalancerId": format!("lb-{}", self.rng.chars(LOWER_ALNUM, 8)), "LoadBalancerName": format!("{}-public", holder.name)})),
                    _ => {
                        let disk = format!("disk-{}", self.rng.chars(LOWER_ALNUM, 8));
                        op.request(json!({"DiskId": disk, "SnapshotName": format!("{}-daily", instance.name)})).resource("cbs", &disk, "")
                    }
                }
            }
            Provider::Huawei => {
                let project = holder.project(region).to_string();
                let job = self.rng.hex(32);
                match self.rng.index(7) {
                    0 => Op::new("ecs", "startServer", false)
                        .request(json!({"os-start": {"servers": [{"id": instance.id}]}}))
                        .response(json!({"job_id": job}))
                        .resource("ecs", &instance.name, &instance.id),
                    1 => Op::new("ecs", "stopServer", false)
                        .request(json!({"os-stop": {"type": "SOFT", "servers": [{"id": instance.id}]}}))
                        .response(json!({"job_id": job}))
                        .resource("ecs", &instance.name, &instance.id),
                    2 => Op::new("ecs", "updateServer", false)
                        .request(json!({"server": {"name": instance.name, "description": format!("owner {owner}")}}))
                        .response(json!({"server": {
                            "id": instance.id,
                            "name": instance.name,
                            "description": format!("owner {owner}"),
                            "status": "ACTIVE",
                            "tenant_id": project,
                            "user_id": self.rng.hex(32),
                            "hostId": self.rng.hex(56),
                            "OS-EXT-AZ:availability_zone": format!("{region}a"),
                            "flavor": {"id": "s6.large.2", "links": []},
                            "addresses": {self.rng.uuid(): [{"addr": format!("192.168.{}.{}", self.rng.range(0, 9), self.rng.range(2, 250)), "version": 4, "OS-EXT-IPS:type": "fixed"}]},
                            "created": "2025-11-20T03:14:07Z",
                        }}))
                        .resource("ecs", &instance.name, &instance.id),
                    3 => {
                        let volume = self.rng.uuid();
                        Op::new("evs", "createVolume", false)
                            .request(json!({"volume": {"name": format!("{}-data", instance.name), "size": 100, "volume_type": "SSD", "availability_zone": format!("{region}a")}}))
                            .response(json!({"job_id": job, "volume_ids": [volume]}))
                            .resource("volume", &format!("{}-data", instance.name), &volume)
                    }
                    4 => Op::new("ecs", "batchCreateServerTags", false)
                        .request(json!({"action": "create", "tags": [{"key": "owner", "value": owner}]}))
                        .resource("ecs", &instance.name, &instance.id),
                    5 => Op::new("obs", "createBucket", false)
                        .request(json!({"bucket": format!("{bucket}-{}", self.rng.range(2, 99)), "location": region, "storage_class": "STANDARD"}))
                        .resource("bucket", &bucket, &bucket),
                    _ => Op::new("iam", "updateUser", false)
                        .request(json!({"user": {"description": format!("team {}", holder.name)}}))
                        .resource("user", &owner, &self.rng.hex(32)),
                }
            }
        }
    }
}

/// `"ec2:DescribeInstances"` → (`ec2`, `DescribeInstances`).
fn split_op(text: &&'static str) -> (&'static str, &'static str) {
    let text: &'static str = text;
    text.split_once(':').unwrap_or(("", text))
}

/// The `additionalEventData` CloudTrail gives S3 calls.
fn s3_extra(rng: &mut Rng) -> Value {
    json!({
        "SignatureVersion": "SigV4",
        "CipherSuite": "TLS_AES_128_GCM_SHA256",
        "bytesTransferredIn": 0,
        "AuthenticationMethod": "AuthHeader",
        "x-amz-id-2": rng.chars(B62, 76),
        "bytesTransferredOut": rng.range(120, 4000),
    })
}
