//! Rendering: one [`Call`] becomes one raw record in its cloud's shape —
//! CloudTrail (AWS), CloudAudit (Tencent) or CTS (Huawei) — the way the
//! normalizers in `event::normalize` read them. Renderers draw their own
//! request ids and timings from the generator's random stream, so they take
//! it as an argument.

mod cloudaudit;
mod cloudtrail;
mod cts;

use serde_json::Value;

use crate::event::model::Provider;

use super::call::Call;
use super::organisation::Org;
use super::random::Rng;

/// The raw record of `call`, in its cloud's shape.
pub(super) fn render(org: &Org, rng: &mut Rng, call: &Call) -> Value {
    match call.provider {
        Provider::Aws => cloudtrail::render(org, rng, call),
        Provider::Tencent => cloudaudit::render(org, rng, call),
        Provider::Huawei => cts::render(org, rng, call),
    }
}
