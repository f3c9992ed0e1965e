//! Token authentication: the first message is `auth`, and the token must be one this server
//! issued to this client key under its current pairing.
//!
//! Owns the verdict on a token (docs/protocol.md, 6.8 and 6.9) and its renewal when less
//! than a third of its lifetime is left. It must not open the session itself: on success the
//! connection goes on to [`super::session`].

use super::ServerEvent;
use super::conn::{Conn, ConnCtx};
use super::registry::Standing;
use crate::message::{ErrorCode, Message, RepairReason};

/// Check a token; returns the client's registered name and pairing id when accepted.
pub(super) async fn authenticate(
    ctx: &ConnCtx,
    conn: &mut Conn,
    token: &str,
) -> Option<(String, String)> {
    let id = ctx.info.peer_id;
    let verdict = ctx
        .shared
        .authority
        .verify(token, id, &ctx.info.peer_cert_hash)
        .and_then(|claims| match ctx.shared.registry.standing(&id) {
            Standing::Paired(record) if claims.pid == record.pairing_id => Ok((claims, record)),
            // A token from an earlier pairing (revoked in between) is void.
            Standing::Paired(_) | Standing::Revoked => Err(RepairReason::Revoked),
            Standing::Unknown => Err(RepairReason::Unknown),
        });
    let (claims, record) = match verdict {
        Ok(v) => v,
        Err(reason) => {
            ctx.shared.emit(ServerEvent::AuthFailed {
                client_addr: ctx.peer,
                client_id: id,
                reason,
            });
            let _ = conn
                .send(&Message::Error {
                    code: ErrorCode::RepairRequired,
                    message: format!("re-pair required: {}", reason.describe()),
                    reason: Some(reason),
                })
                .await;
            return None;
        }
    };
    let ttl_ms = ctx.shared.config.token_ttl.as_millis() as u64;
    let left_ms = claims
        .exp
        .saturating_mul(1000)
        .saturating_sub(crate::unix_now_ms());
    let (token, token_expires_at) = if left_ms.saturating_mul(3) < ttl_ms {
        match ctx.shared.authority.issue(
            id,
            &ctx.info.peer_cert_hash,
            &claims.pid,
            ctx.shared.config.token_ttl,
        ) {
            Ok(i) => (Some(i.token), i.claims.exp),
            Err(e) => {
                ctx.warn(format!("renewing a token failed: {e}"));
                (None, claims.exp)
            }
        }
    } else {
        (None, claims.exp)
    };
    conn.send(&Message::AuthOk {
        server_name: ctx.shared.config.name.clone(),
        token,
        token_expires_at,
    })
    .await
    .ok()?;
    Some((record.name, record.pairing_id))
}
