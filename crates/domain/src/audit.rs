//! Who did what, to what: the parts of an audit log row that the business decides (PCI DSS 10.2).
//!
//! The server fills an [`AuditContext`] from the request (the authenticated actor, request id, IP,
//! user agent); the store writes one row per mutation, in the mutation's own transaction, with the
//! [`AuditTarget`] the mutation produced. The target's `detail` is a small summary of the object
//! after the change — statuses, versions, amounts, flags — never a secret, a key hash or a
//! customer's contact data, so the log can be read by support staff and kept for a year.

use serde_json::{Value, json};

use crate::{ApiKey, ApiKeyId, Merchant, MerchantId, Order, Payment, Refund, Role, User, UserId};

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditActor {
    /// A logged-in user.
    User {
        /// The user.
        id: UserId,
        /// Their role at the time.
        role: Role,
    },
    /// A merchant's API key.
    Key {
        /// The key (never its secret).
        id: ApiKeyId,
    },
    /// A provider, through a notification whose signature (or queried-back status) was verified.
    Provider {
        /// The provider account it was addressed to.
        account: String,
    },
    /// An operator at the `jinliu` command line (whoever can run the binary on the host).
    Cli,
    /// One of jinliu's background workers (status sync, expiry).
    System {
        /// Which one.
        worker: &'static str,
    },
    /// Nobody authenticated yet (a login attempt for an unknown email, say).
    Anonymous,
}

impl AuditActor {
    /// `user`, `key`, `provider`, `cli`, `system` or `anonymous`.
    pub fn kind(&self) -> &'static str {
        match self {
            AuditActor::User { .. } => "user",
            AuditActor::Key { .. } => "key",
            AuditActor::Provider { .. } => "provider",
            AuditActor::Cli => "cli",
            AuditActor::System { .. } => "system",
            AuditActor::Anonymous => "anonymous",
        }
    }

    /// The actor's id: a user or key id, a provider account, a worker's name.
    pub fn id(&self) -> Option<String> {
        match self {
            AuditActor::User { id, .. } => Some(id.to_string()),
            AuditActor::Key { id } => Some(id.to_string()),
            AuditActor::Provider { account } => Some(account.clone()),
            AuditActor::System { worker } => Some((*worker).to_owned()),
            AuditActor::Cli | AuditActor::Anonymous => None,
        }
    }

    /// The user's role, for user actors.
    pub fn role(&self) -> Option<&'static str> {
        match self {
            AuditActor::User { role, .. } => Some(role.as_str()),
            _ => None,
        }
    }
}

/// Where a mutation came from: filled once per request (or CLI command, or worker) and carried to
/// every row that request writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditContext {
    /// Who.
    pub actor: AuditActor,
    /// The merchant the actor acts for, when there is one.
    pub merchant_id: Option<MerchantId>,
    /// The HTTP request id (`x-request-id`), for matching a row with the request's log lines.
    pub request_id: Option<String>,
    /// The client's address.
    pub ip: Option<String>,
    /// The client's `User-Agent`, cut to 200 characters.
    pub user_agent: Option<String>,
}

impl AuditContext {
    /// A background worker's context.
    pub fn system(worker: &'static str) -> AuditContext {
        AuditContext::bare(AuditActor::System { worker })
    }

    /// A context with only an actor.
    pub fn bare(actor: AuditActor) -> AuditContext {
        AuditContext {
            actor,
            merchant_id: None,
            request_id: None,
            ip: None,
            user_agent: None,
        }
    }

    /// The same request, now known to be `actor` acting for `merchant`.
    pub fn as_actor(&self, actor: AuditActor, merchant: Option<MerchantId>) -> AuditContext {
        AuditContext {
            actor,
            merchant_id: merchant.or_else(|| self.merchant_id.clone()),
            ..self.clone()
        }
    }
}

/// What a mutation changed.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditTarget {
    /// `order`, `payment`, `refund`, `merchant`, `api_key`, `user`, …
    pub kind: &'static str,
    /// The object's id.
    pub id: String,
    /// The merchant the object belongs to (none for platform objects such as staff users).
    pub merchant_id: Option<MerchantId>,
    /// A redacted summary of the object after the change.
    pub detail: Value,
}

impl AuditTarget {
    /// An object known only by id (a refusal, before anything was loaded).
    pub fn id_only(kind: &'static str, id: impl Into<String>) -> AuditTarget {
        AuditTarget {
            kind,
            id: id.into(),
            merchant_id: None,
            detail: Value::Null,
        }
    }

    /// An order after the change.
    pub fn order(o: &Order) -> AuditTarget {
        AuditTarget {
            kind: "order",
            id: o.id.to_string(),
            merchant_id: Some(o.merchant_id.clone()),
            detail: json!({
                "status": o.status.as_str(), "version": o.version, "livemode": o.livemode,
                "amount": o.amount.minor(), "currency": o.amount.currency().code(),
            }),
        }
    }

    /// A payment after the change.
    pub fn payment(p: &Payment) -> AuditTarget {
        AuditTarget {
            kind: "payment",
            id: p.id.to_string(),
            merchant_id: Some(p.merchant_id.clone()),
            detail: json!({
                "status": p.status.as_str(), "version": p.version, "livemode": p.livemode,
                "amount": p.amount.minor(), "currency": p.amount.currency().code(),
                "refunded": p.refunded_minor, "provider": p.provider, "account": p.provider_account,
            }),
        }
    }

    /// A refund after the change.
    pub fn refund(r: &Refund) -> AuditTarget {
        AuditTarget {
            kind: "refund",
            id: r.id.to_string(),
            merchant_id: Some(r.merchant_id.clone()),
            detail: json!({
                "status": r.status.as_str(), "paymentId": r.payment_id.as_str(), "livemode": r.livemode,
                "amount": r.amount.minor(), "currency": r.amount.currency().code(),
            }),
        }
    }

    /// A merchant after the change.
    pub fn merchant(m: &Merchant) -> AuditTarget {
        AuditTarget {
            kind: "merchant",
            id: m.id.to_string(),
            merchant_id: Some(m.id.clone()),
            detail: json!({ "name": m.name, "status": m.status }),
        }
    }

    /// A merchant provider account after the change: which credentials are set, never their values.
    pub fn provider_account(a: &crate::MerchantProviderAccount) -> AuditTarget {
        AuditTarget {
            kind: "provider_account",
            id: a.id.to_string(),
            merchant_id: Some(a.merchant_id.clone()),
            detail: json!({
                "provider": a.provider, "livemode": a.livemode, "baseUrl": a.base_url,
                "credentialKeys": a.credential_keys, "default": a.is_default,
                "status": a.status.as_str(), "version": a.version,
            }),
        }
    }

    /// An API key after the change: its visible prefix and grants, never the hash.
    pub fn api_key(k: &ApiKey) -> AuditTarget {
        AuditTarget {
            kind: "api_key",
            id: k.id.to_string(),
            merchant_id: Some(k.merchant_id.clone()),
            detail: json!({
                "kind": k.kind.as_str(), "livemode": k.livemode, "prefix": k.prefix,
                "permissions": k.permissions.as_ref().map(|ps| ps.iter().map(|p| p.as_str()).collect::<Vec<_>>()),
                "expiresAt": k.expires_at.map(crate::format_time),
                "revokedAt": k.revoked_at.map(crate::format_time),
            }),
        }
    }

    /// A user after the change: role and status, never the password hash or TOTP seed.
    pub fn user(u: &User) -> AuditTarget {
        AuditTarget {
            kind: "user",
            id: u.id.to_string(),
            merchant_id: u.merchant_id.clone(),
            detail: json!({
                "email": u.email, "role": u.role.as_str(), "status": u.status, "totpEnabled": u.totp_enabled,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_target_never_carries_the_password_hash_or_totp_seed() {
        let u = User {
            id: UserId::generate(),
            email: "a@example.com".into(),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            role: Role::Finance,
            merchant_id: None,
            status: "active".into(),
            failed_logins: 0,
            locked_until: None,
            last_login_at: None,
            created_at: chrono::Utc::now(),
            totp_secret: Some("v1.k1.sealed-seed".into()),
            totp_enabled: true,
            totp_last_step: 0,
            recovery_codes: Some("hash1,hash2".into()),
        };
        let detail = AuditTarget::user(&u).detail.to_string();
        assert!(!detail.contains(&u.password_hash));
        assert!(!detail.contains("sealed-seed") && !detail.contains("hash1"));
        assert!(detail.contains("finance"));
    }

    #[test]
    fn a_request_context_keeps_its_request_id_when_the_actor_becomes_known() {
        let base = AuditContext {
            request_id: Some("r1".into()),
            ip: Some("127.0.0.1".into()),
            ..AuditContext::bare(AuditActor::Anonymous)
        };
        let key = ApiKeyId::generate();
        let m = MerchantId::generate();
        let ctx = base.as_actor(AuditActor::Key { id: key.clone() }, Some(m.clone()));
        assert_eq!(ctx.request_id.as_deref(), Some("r1"));
        assert_eq!(ctx.actor.kind(), "key");
        assert_eq!(ctx.actor.id(), Some(key.to_string()));
        assert_eq!(ctx.merchant_id, Some(m));
    }
}
