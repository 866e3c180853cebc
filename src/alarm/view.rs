//! Alarms as they leave the store: access keys masked (`crate::mask`), the
//! key's remark attached, and every call record with its IP type, remark and
//! asset, computed at read time from the current remarks and assets.

use serde::Serialize;

use super::assets::{Directory, IpInfo};
use super::store::{AlarmDetail, AlarmRow, CallRecord};
use crate::mask::{mask_access_key, mask_group_key, mask_key_in_text, mask_keys_in_json, mask_unknown_keys_in_json};

/// An alarm for output: keys masked, the key's remark attached.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AlarmView {
    #[serde(flatten)]
    pub alarm: AlarmRow,
    /// The operator's remark on the alarm's access key, if any.
    pub access_key_remark: Option<String>,
}

/// A call record for output, with its IP type.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CallView {
    #[serde(flatten)]
    pub call: CallRecord,
    #[serde(flatten)]
    pub ip: IpInfo,
}

/// An alarm's details for output.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AlarmDetailView {
    #[serde(flatten)]
    pub alarm: AlarmView,
    pub calls: Vec<CallView>,
    /// Sample events with every access key they quote masked.
    pub samples: Vec<serde_json::Value>,
    /// Status transitions, oldest first.
    pub history: Vec<super::workflow::Transition>,
    /// The alarm's access key across the store: its other alarms, addresses
    /// and accounts (AK association risk). Set by `service::show_alarm`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_association: Option<super::investigate::KeyAssociation>,
    /// What the principal called successfully and was refused, with a
    /// least-privilege policy (permission convergence).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permissions: Option<super::investigate::Permissions>,
}

/// Mask an alarm row and attach its key's remark.
pub fn alarm_view(mut alarm: AlarmRow, directory: &Directory) -> AlarmView {
    let mut remark = None;
    if let Some(key) = alarm.identity.access_key_id.take() {
        remark = directory.key_remark(&key).map(str::to_string);
        alarm.output = mask_key_in_text(&alarm.output, &key);
        alarm.group_key = mask_key_in_text(&alarm.group_key, &key);
        alarm.identity.access_key_id = Some(mask_access_key(&key));
    }
    alarm.group_key = mask_group_key(&alarm.group_key);
    AlarmView {
        alarm,
        access_key_remark: remark,
    }
}

/// Mask an alarm's details and classify its call records.
pub fn detail_view(detail: AlarmDetail, directory: &Directory) -> AlarmDetailView {
    let AlarmDetail {
        alarm,
        calls,
        samples,
        history,
    } = detail;
    let alarm_key = alarm.identity.access_key_id.clone();
    let alarm = alarm_view(alarm, directory);
    let calls = calls
        .into_iter()
        .map(|call| {
            let ip = directory.classify_recorded(&call.source_ip, &call.ip_kind);
            CallView { call, ip }
        })
        .collect();
    let samples = samples
        .into_iter()
        .map(|mut sample| {
            let sample_key = sample
                .pointer("/access_key/id")
                .and_then(serde_json::Value::as_str)
                .map(str::to_string);
            let keys: Vec<&str> = alarm_key.iter().chain(sample_key.iter()).map(String::as_str).collect();
            mask_keys_in_json(&mut sample, &keys);
            // Keys the event quotes besides its own (one it created, in its response).
            mask_unknown_keys_in_json(&mut sample);
            sample
        })
        .collect();
    AlarmDetailView {
        alarm,
        calls,
        samples,
        history,
        key_association: None,
        permissions: None,
    }
}
