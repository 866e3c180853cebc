//! Cutting the chain's oldest links without breaking verification.
//!
//! A cut takes a run of the oldest links, all older than the chain's
//! retention, and first checks that they still chain from the last
//! checkpoint (a damaged link is never cut: `verify` must still name it).
//! Every row whose last seal is in the run is sealed again at the head with
//! the same row hash (a *carried* link: the seal moves, it is not renewed,
//! so a row edited behind trailwarden's back stays caught); rows the run
//! says were removed need nothing. Then the run is deleted and a checkpoint
//! records its last link's seq and hash, from which `verify` walks the rest.
//! All of it in the caller's transaction, on either backend.

use std::collections::HashMap;

use crate::alarm::chain::{self, GENESIS, LinkKind, REMOVED};
use crate::alarm::seal;
use crate::db::{Db, DbError, DbExt, get};
use crate::db_params;

/// What one cut did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cut {
    pub links_cut: u64,
    pub links_carried: u64,
}

/// Why a cut did not happen.
#[derive(Debug, thiserror::Error)]
pub enum CutError {
    #[error("the chain is broken at link {seq} ({reason}); nothing is cut until `store verify` is clean")]
    Broken { seq: i64, reason: &'static str },
    #[error(transparent)]
    Db(#[from] DbError),
}

struct Link {
    seq: i64,
    at: String,
    kind: String,
    ref_id: i64,
    row_hash: String,
    prev_hash: String,
    hash: String,
}

/// Cut at most `limit` of the oldest links whose time (`at`, RFC 3339 as
/// stored) is before `cutoff`. `None` when no link is old enough.
pub fn cut_oldest(db: &mut dyn Db, cutoff: &str, limit: usize, now: &str) -> Result<Option<Cut>, CutError> {
    let (start_seq, start_hash) = seal::checkpoint(db)?.unwrap_or((0, GENESIS.to_string()));
    let links: Vec<Link> = db.query_all(
        "SELECT seq, at, kind, ref_id, row_hash, prev_hash, hash FROM chain WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        db_params![start_seq, limit as i64],
        |row| {
            Ok(Link {
                seq: get(row, 0)?,
                at: get(row, 1)?,
                kind: get(row, 2)?,
                ref_id: get(row, 3)?,
                row_hash: get(row, 4)?,
                prev_hash: get(row, 5)?,
                hash: get(row, 6)?,
            })
        },
    )?;
    // Links are appended in time order: the run is the prefix older than the cutoff.
    let run = links.iter().take_while(|link| link.at.as_str() < cutoff).count();
    if run == 0 {
        return Ok(None);
    }
    let links = &links[..run];
    let (mut expected_seq, mut prev) = (start_seq + 1, start_hash);
    for link in links {
        let reason = if link.seq != expected_seq {
            Some("links are missing")
        } else if link.prev_hash != prev {
            Some("it does not follow the link before it")
        } else if LinkKind::parse(&link.kind).is_none() {
            Some("its kind is unknown")
        } else if chain::link_hash(
            &link.prev_hash,
            link.seq,
            &link.kind,
            link.ref_id,
            &link.row_hash,
            &link.at,
        ) != link.hash
        {
            Some("its hash does not match its contents")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(CutError::Broken { seq: link.seq, reason });
        }
        prev.clone_from(&link.hash);
        expected_seq = link.seq + 1;
    }
    let last = links.last().map_or(start_seq, |link| link.seq);
    // Each row's last seal in the run, in link order.
    let mut last_in_run: HashMap<(&str, i64), usize> = HashMap::new();
    for (index, link) in links.iter().enumerate() {
        last_in_run.insert((link.kind.as_str(), link.ref_id), index);
    }
    let mut carried: Vec<&Link> = Vec::new();
    for (&(kind, ref_id), &index) in &last_in_run {
        let link = &links[index];
        if link.row_hash == REMOVED {
            continue;
        }
        let sealed_later = db
            .query_opt(
                "SELECT 1 FROM chain WHERE kind = ?1 AND ref_id = ?2 AND seq > ?3 LIMIT 1",
                db_params![kind, ref_id, last],
                |_| Ok(()),
            )?
            .is_some();
        if !sealed_later {
            carried.push(link);
        }
    }
    carried.sort_by_key(|link| link.seq);
    for link in &carried {
        if let Some(kind) = LinkKind::parse(&link.kind) {
            seal::append_hashed(db, kind, &[(link.ref_id, link.row_hash.clone())], now)?;
        }
    }
    db.execute("DELETE FROM chain WHERE seq <= ?1", db_params![last])?;
    let cut = Cut {
        links_cut: run as u64,
        links_carried: carried.len() as u64,
    };
    db.execute(
        "INSERT INTO chain_checkpoints (seq, hash, at, links_cut, links_carried) VALUES (?1, ?2, ?3, ?4, ?5)",
        db_params![last, &prev, now, cut.links_cut as i64, cut.links_carried as i64],
    )?;
    Ok(Some(cut))
}
