//! User agents: the browsers, SDKs and CLIs ordinary calls come from,
//! per cloud and per identity's tool, shaped as each cloud records them.

use crate::event::model::Provider;

pub(super) const BROWSERS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:124.0) Gecko/20100101 Firefox/124.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36 Edg/122.0.2365.92",
];

const TENCENT_SDKS: &[&str] = &[
    "SDK_GO_1.0.374",
    "SDK_PYTHON_3.0.1100",
    "SDK_JAVA_3.1.1022",
    "SDK_GO_1.0.412",
];

/// The Tencent console's own client (as seen in console records).
pub(super) const TENCENT_CONSOLE_AGENT: &str = "SDK_NODEJS_0.2.1";

const HUAWEI_SDKS: &[&str] = &[
    "huaweicloud-sdk-go/3.1.80",
    "huaweicloud-usdk-python/3.0",
    "huaweicloud-usdk-go/3.0",
    "huaweicloud-sdk-java/3.1.80",
];

/// `DescribeInstances` → `describe-instances`; API-version suffixes dropped.
pub(super) fn kebab(action: &str) -> String {
    let action = action.trim_end_matches(|c: char| c.is_ascii_digit());
    let mut out = String::with_capacity(action.len() + 4);
    for (index, c) in action.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if index > 0 {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// AWS agents name the CLI command or the SDK's service, so they depend on the call.
fn aws_agent(tool: usize, service: &str, action: &str) -> String {
    let command = format!("{service}.{}", kebab(action));
    match tool % 5 {
        0 => format!(
            "aws-cli/2.15.30 Python/3.11.8 Linux/6.5.0-1017-aws exe/x86_64.ubuntu.22 prompt/off command/{command}"
        ),
        1 => format!(
            "aws-cli/2.15.21 Python/3.11.6 Darwin/23.3.0 exe/x86_64 prompt/off command/{command}"
        ),
        2 => "Boto3/1.34.69 md/Botocore#1.34.69 ua/2.0 os/linux#6.5.0-1017-aws md/arch#x86_64 lang/python#3.11.8 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.34.69".to_string(),
        3 => format!(
            "aws-sdk-go-v2/1.25.2 os/linux lang/go#1.22.1 md/GOOS#linux md/GOARCH#amd64 api/{service}#1.149.3"
        ),
        _ => format!(
            "APN/1.0 HashiCorp/1.0 Terraform/1.7.4 (+https://www.terraform.io) terraform-provider-aws/5.40.0 (+https://registry.terraform.io/providers/hashicorp/aws) aws-sdk-go-v2/1.25.2 os/linux lang/go#1.22.1 md/GOOS#linux md/GOARCH#amd64 api/{service}#1.149.3"
        ),
    }
}

/// The agent an identity using `tool` calls `service`.`action` with.
pub(super) fn agent(provider: Provider, tool: usize, service: &str, action: &str) -> String {
    match provider {
        Provider::Aws => aws_agent(tool, service, action),
        Provider::Tencent => TENCENT_SDKS[tool % TENCENT_SDKS.len()].to_string(),
        Provider::Huawei => HUAWEI_SDKS[tool % HUAWEI_SDKS.len()].to_string(),
    }
}
