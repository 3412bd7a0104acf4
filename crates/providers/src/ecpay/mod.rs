//! 綠界 ECPay all-in-one (AIO): the adapter.
//!
//! A payment starts in the customer's browser, which posts a signed form to
//! `{base}/Cashier/AioCheckOut/V5` ([`PaymentProvider::checkout_form`]); `create_payment` makes no
//! call. ECPay posts the result to `ReturnURL` (the account's notify URL), signed with
//! CheckMacValue and answered `1|OK`. Queries use `QueryTradeInfo/V5`; card refunds use
//! `CreditDetail/DoAction` after reading the card's state from `CreditDetail/QueryTrade/V2`,
//! which also gives the refunded total (DoAction has no refund id, so a retry must look first).
//! The adapter speaks the protocol only; it never decides a payment's state.
//! See `docs/providers/ecpay.md`.

pub mod sandbox;
pub mod sign;
pub mod wire;

use chrono::{FixedOffset, Offset as _};
use jinliu_domain::{Currency, Money, Timestamp};

use crate::account::AccountError;
use crate::outbound::{Reply, Retry};
use crate::{
    CheckoutForm, CreatePayment, CreatedPayment, InboundNotification, Outbound, PaymentProvider, ProviderAccount,
    ProviderError, ProviderStatus, RefundOutcome, RefundRequest, VerifiedNotification,
};
use wire::{Action, card_status, trade_status};

/// The sandbox's test merchant credentials (the default test-mode account uses them): ECPay's
/// public stage merchant 3002607, so the same account also works against ECPay's real stage.
pub const SANDBOX_CREDENTIALS: &[(&str, &str)] = &[
    ("merchant_id", "3002607"),
    ("hash_key", "pwFHCqoQZGmho4w6"),
    ("hash_iv", "EkRm7iFT261dpevs"),
];

/// Credential keys: `merchant_id`, `hash_key`, `hash_iv` are required; `credit_check_code` (the
/// 商家檢查碼 from ECPay's back office, needed by CreditDetail/QueryTrade on the real hosts) is
/// optional and sent empty when absent.
pub const CREDENTIAL_KEYS: &[&str] = &["merchant_id", "hash_key", "hash_iv", "credit_check_code"];

/// ECPay's stage host (public test merchants; no DoAction there).
pub const STAGE_URL: &str = "https://payment-stage.ecpay.com.tw";
/// ECPay's production host.
pub const PRODUCTION_URL: &str = "https://payment.ecpay.com.tw";

/// The acknowledgement ECPay expects for a notification, byte for byte.
pub const ACK: &str = "1|OK";

/// jinliu payment methods and ECPay's `ChoosePayment` for each. Only card payments can be
/// refunded through the API.
const METHODS: &[(&str, &str)] = &[
    ("ecpay_credit", "Credit"),
    ("ecpay_atm", "ATM"),
    ("ecpay_cvs", "CVS"),
    ("ecpay_barcode", "BARCODE"),
    ("ecpay_webatm", "WebATM"),
];

/// Asia/Taipei: UTC+8 all year (no daylight saving since 1979).
fn taipei() -> FixedOffset {
    // 8 h is within ±24 h, so the offset always exists; UTC is only a formal fallback.
    FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| chrono::Utc.fix())
}

/// Formats an instant as ECPay's `yyyy/MM/dd HH:mm:ss` in Taipei time.
pub fn taipei_time(t: Timestamp) -> String {
    t.with_timezone(&taipei()).format(wire::DATE_FORMAT).to_string()
}

/// ECPay's `MerchantTradeNo` rule: 1–20 ASCII letters and digits.
pub fn valid_trade_no(s: &str) -> bool {
    (1..=20).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Whole TWD for an amount the adapter already checked.
fn whole_twd(amount: Money) -> i64 {
    amount.minor() / 100
}

/// Where a card trade stands at ECPay, as the refund planner needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardState {
    /// The card state word (`已授權`, `要關帳`, `已關帳`, `已放棄`).
    pub status: String,
    /// The trade's amount, whole TWD.
    pub amount: i64,
    /// Refunded so far, whole TWD.
    pub refunded: i64,
}

impl CardState {
    fn from_detail(d: &wire::CreditDetail, trade_amount: i64) -> CardState {
        let amount = wire::json_amount(&d.amount).unwrap_or(trade_amount);
        // An abandoned authorisation returned everything; otherwise refunds are the close entries
        // that say 退 (要退款 pending, 已退款 done).
        let refunded = if d.status == card_status::ABANDONED {
            amount
        } else {
            d.close_data
                .iter()
                .filter(|e| e.status.contains('退'))
                .filter_map(|e| wire::json_amount(&e.amount))
                .sum()
        };
        CardState {
            status: d.status.clone(),
            amount,
            refunded,
        }
    }
}

/// The DoAction calls that refund `amount` (whole TWD) of a card trade in `state`, or why none
/// can. ECPay: `R` refunds (partially) once settled or while settlement is pending; a full refund
/// while settlement is pending is `E` (undo the settlement) then `N` (abandon the
/// authorisation); an unsettled authorisation can only be abandoned whole.
pub fn plan_refund(state: &CardState, amount: i64) -> Result<Vec<Action>, String> {
    let whole = amount == state.amount && state.refunded == 0;
    match state.status.as_str() {
        card_status::SETTLED => Ok(vec![Action::Refund]),
        card_status::SETTLING if whole => Ok(vec![Action::CancelSettlement, Action::Abandon]),
        card_status::SETTLING => Ok(vec![Action::Refund]),
        card_status::AUTHORISED if whole => Ok(vec![Action::Abandon]),
        card_status::AUTHORISED => Err(
            "the card payment is authorised but not settled yet: ECPay refunds part of it \
                                        only after settlement"
                .into(),
        ),
        card_status::ABANDONED => Err("the card authorisation was already abandoned (fully refunded)".into()),
        other => Err(format!("ECPay cannot refund a card trade in state {other:?}")),
    }
}

/// The 綠界 ECPay adapter for one merchant account.
#[derive(Debug)]
pub struct EcPay {
    account: ProviderAccount,
    out: Outbound,
    merchant_id: String,
    hash_key: String,
    hash_iv: String,
    credit_check_code: String,
}

impl EcPay {
    /// The adapter for `account`; refuses missing credentials and a malformed merchant id.
    pub fn new(account: ProviderAccount, out: Outbound) -> Result<EcPay, AccountError> {
        let merchant_id = account.credential("merchant_id")?.to_owned();
        let hash_key = account.credential("hash_key")?.to_owned();
        let hash_iv = account.credential("hash_iv")?.to_owned();
        if merchant_id.len() > 10 || !merchant_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(AccountError::Invalid {
                account: account.id.clone(),
                message: "ECPay merchant_id must be at most 10 letters or digits".into(),
            });
        }
        let credit_check_code = account.credential("credit_check_code").unwrap_or_default().to_owned();
        Ok(EcPay {
            account,
            out,
            merchant_id,
            hash_key,
            hash_iv,
            credit_check_code,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.account.base_url.trim_end_matches('/'))
    }

    fn signed(&self, mut fields: wire::Fields) -> wire::Fields {
        sign::sign(&mut fields, &self.hash_key, &self.hash_iv);
        fields
    }

    /// Posts a signed form and returns the answer of a call that reached ECPay.
    async fn post(
        &self,
        op: &'static str,
        retry: Retry,
        path: &str,
        fields: impl Fn() -> wire::Fields,
    ) -> Result<Reply, ProviderError> {
        let url = self.url(path);
        let reply = self
            .out
            .call(op, retry, |c| {
                c.post(&url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(wire::encode_fields(&self.signed(fields())))
            })
            .await?;
        match reply.status {
            200 => Ok(reply),
            // ECPay answers 403 to a merchant calling too fast and lifts it after a while.
            403 => Err(ProviderError::Unavailable("ECPay rate limit (HTTP 403)".into())),
            s => Err(ProviderError::Refused(format!(
                "ECPay answered HTTP {s}: {}",
                excerpt(&reply)
            ))),
        }
    }

    /// QueryTradeInfo/V5 for `reference`.
    async fn trade_info(&self, reference: &str) -> Result<wire::TradeInfo, ProviderError> {
        if !valid_trade_no(reference) {
            return Err(ProviderError::NotFound);
        }
        let reply = self
            .post("query", Retry::Safe, "/Cashier/QueryTradeInfo/V5", || {
                // A fresh TimeStamp per attempt: ECPay accepts it for 3 minutes only.
                wire::QueryTradeInfo {
                    merchant_id: self.merchant_id.clone(),
                    merchant_trade_no: reference.to_owned(),
                    timestamp: chrono::Utc::now().timestamp(),
                }
                .fields()
            })
            .await?;
        let fields = wire::parse_fields(&reply.body);
        let Some(info) = wire::TradeInfo::from_fields(&fields) else {
            return Err(ProviderError::Refused(format!("ECPay: {}", excerpt(&reply))));
        };
        let signed = wire::field(&fields, sign::FIELD).is_some();
        // A forged "paid" answer must not pass; an unsigned error answer claims nothing.
        if (signed || info.trade_status == trade_status::PAID) && !sign::verify(&fields, &self.hash_key, &self.hash_iv)
        {
            return Err(ProviderError::Unavailable(
                "ECPay's QueryTradeInfo answer failed its CheckMacValue".into(),
            ));
        }
        if info.trade_status == trade_status::NOT_FOUND {
            return Err(ProviderError::NotFound);
        }
        if !info.merchant_trade_no.is_empty() && info.merchant_trade_no != reference {
            return Err(ProviderError::Unavailable("ECPay answered about another trade".into()));
        }
        Ok(info)
    }

    /// The card state of a paid trade, from CreditDetail/QueryTrade/V2.
    async fn card_state(&self, info: &wire::TradeInfo) -> Result<CardState, ProviderError> {
        let Some(gwsr) = info.gwsr.clone() else {
            return Err(ProviderError::Unavailable(
                "ECPay's QueryTradeInfo gave no gwsr for this card trade".into(),
            ));
        };
        let amount = info.trade_amt.unwrap_or_default();
        let reply = self
            .post("query", Retry::Safe, "/CreditDetail/QueryTrade/V2", || {
                wire::CreditDetailQuery {
                    merchant_id: self.merchant_id.clone(),
                    credit_refund_id: gwsr.clone(),
                    credit_amount: amount,
                    credit_check_code: self.credit_check_code.clone(),
                }
                .fields()
            })
            .await?;
        let parsed: wire::CreditDetailReply = serde_json::from_slice(&reply.body)
            .map_err(|_| ProviderError::Unavailable(format!("ECPay CreditDetail answer: {}", excerpt(&reply))))?;
        match parsed.rtn_value {
            Some(detail) => Ok(CardState::from_detail(&detail, amount)),
            None => Err(ProviderError::Refused(format!(
                "ECPay CreditDetail: {}",
                parsed.rtn_msg
            ))),
        }
    }

    /// One DoAction call; never repeated, since ECPay would apply it twice.
    async fn do_action(
        &self,
        reference: &str,
        trade_no: &str,
        action: Action,
        amount: i64,
    ) -> Result<wire::DoActionReply, ProviderError> {
        let op = if action == Action::Settle { "capture" } else { "refund" };
        let reply = self
            .post(op, Retry::Never, "/CreditDetail/DoAction", || {
                wire::DoAction {
                    merchant_id: self.merchant_id.clone(),
                    merchant_trade_no: reference.to_owned(),
                    trade_no: trade_no.to_owned(),
                    action,
                    total_amount: amount,
                }
                .fields()
            })
            .await?;
        wire::DoActionReply::from_fields(&wire::parse_fields(&reply.body))
            .ok_or_else(|| ProviderError::Unavailable(format!("ECPay DoAction answer: {}", excerpt(&reply))))
    }

    fn choose_payment(method: &str) -> Option<&'static str> {
        METHODS.iter().find(|(m, _)| *m == method).map(|(_, c)| *c)
    }

    fn build_form(&self, req: &CreatePayment) -> Result<CheckoutForm, ProviderError> {
        let choose = Self::choose_payment(&req.method)
            .ok_or_else(|| ProviderError::Refused(format!("ECPay does not offer method {:?}", req.method)))?;
        self.check_amount(req.amount).map_err(ProviderError::Refused)?;
        if !valid_trade_no(&req.reference) {
            return Err(ProviderError::Refused(format!(
                "reference {:?} is not 1–20 letters and digits",
                req.reference
            )));
        }
        // `#` separates items in ItemName; one description is one item.
        let name = req.description.trim().replace('#', " ");
        let name = if name.is_empty() {
            format!("Payment {}", req.reference)
        } else {
            name
        };
        let form = wire::AioCheckOut {
            merchant_id: self.merchant_id.clone(),
            merchant_trade_no: req.reference.clone(),
            merchant_trade_date: taipei_time(req.created_at),
            total_amount: whole_twd(req.amount),
            trade_desc: wire::truncate_bytes(&name, wire::TRADE_DESC_MAX_BYTES)
                .trim()
                .to_owned(),
            item_name: wire::truncate_bytes(&name, wire::ITEM_NAME_MAX_BYTES).trim().to_owned(),
            return_url: self.account.notify_url.clone(),
            choose_payment: choose.to_owned(),
            client_back_url: req.return_url.clone(),
        };
        Ok(CheckoutForm {
            action: self.url("/Cashier/AioCheckOut/V5"),
            fields: self.signed(form.fields()),
        })
    }
}

fn excerpt(reply: &Reply) -> String {
    reply.text().trim().chars().take(200).collect()
}

#[async_trait::async_trait]
impl PaymentProvider for EcPay {
    fn id(&self) -> &'static str {
        "ecpay"
    }

    fn account(&self) -> &ProviderAccount {
        &self.account
    }

    fn supports(&self, currency: Currency) -> bool {
        currency == Currency::Twd
    }

    fn check_amount(&self, amount: Money) -> Result<(), String> {
        crate::whole_twd("ECPay", amount, 1, i64::MAX).map(|_| ())
    }

    fn can_refund(&self, method: &str) -> bool {
        Self::choose_payment(method) == Some("Credit")
    }

    async fn create_payment(&self, req: &CreatePayment) -> Result<CreatedPayment, ProviderError> {
        // Nothing to call: the customer's browser posts the form. Building it here checks that
        // it can be built, so a bad method or amount fails at creation, not on the pay page.
        self.build_form(req)?;
        Ok(CreatedPayment::default())
    }

    fn checkout_form(&self, req: &CreatePayment) -> Option<CheckoutForm> {
        self.build_form(req).ok()
    }

    async fn query_payment(&self, reference: &str) -> Result<ProviderStatus, ProviderError> {
        let info = self.trade_info(reference).await?;
        Ok(match info.trade_status.as_str() {
            trade_status::UNPAID => ProviderStatus::Pending,
            trade_status::PAID => ProviderStatus::Succeeded {
                transaction_id: Some(info.trade_no).filter(|t| !t.is_empty()),
            },
            // Not established: abandoned or failed; either way the window is over and no money
            // moved. A decline is reported as Failed by its notification first.
            trade_status::NOT_ESTABLISHED => ProviderStatus::Expired,
            other => ProviderStatus::Failed {
                reason: format!("ECPay TradeStatus {other}"),
            },
        })
    }

    async fn refund(&self, req: &RefundRequest) -> Result<RefundOutcome, ProviderError> {
        if !self.can_refund(&req.method) {
            return Err(ProviderError::Refused(format!(
                "ECPay refunds only card payments through its API, not {}",
                req.method
            )));
        }
        self.check_amount(req.amount).map_err(ProviderError::Refused)?;
        let info = self.trade_info(&req.payment_reference).await?;
        if info.trade_status != trade_status::PAID {
            return Ok(RefundOutcome::Failed(format!(
                "the ECPay trade is not paid (TradeStatus {})",
                info.trade_status
            )));
        }
        let state = self.card_state(&info).await?;
        let amount = whole_twd(req.amount);
        let actions = match plan_refund(&state, amount) {
            Ok(actions) => actions,
            Err(reason) => return Ok(RefundOutcome::Failed(reason)),
        };
        for (i, action) in actions.iter().enumerate() {
            let reply = match self
                .do_action(&req.payment_reference, &info.trade_no, *action, amount)
                .await
            {
                Ok(reply) => reply,
                // After E went through, a failed N leaves the payment authorised: the refund's
                // outcome is open, and a retry reads the card state again before acting.
                Err(e) if i > 0 => return Err(ProviderError::Unavailable(format!("after {:?}: {e}", actions[0]))),
                Err(e) => return Err(e),
            };
            if reply.rtn_code != "1" {
                if i > 0 {
                    return Err(ProviderError::Unavailable(format!(
                        "ECPay took {:?} but refused {:?}: {} {}",
                        actions[0], action, reply.rtn_code, reply.rtn_msg
                    )));
                }
                return Ok(RefundOutcome::Failed(format!(
                    "ECPay {}: {}",
                    reply.rtn_code, reply.rtn_msg
                )));
            }
        }
        Ok(RefundOutcome::Succeeded(Some(info.trade_no)))
    }

    fn refund_is_idempotent(&self) -> bool {
        // DoAction carries no refund id: ECPay would refund a repeated R twice.
        false
    }

    async fn refunded_total(&self, reference: &str) -> Result<i64, ProviderError> {
        let info = self.trade_info(reference).await?;
        if info.trade_status != trade_status::PAID {
            return Ok(0);
        }
        if !info.payment_type.starts_with("Credit") {
            // Only card trades are refunded through the API; nothing else can have been.
            return Ok(0);
        }
        let state = self.card_state(&info).await?;
        Ok(state.refunded.saturating_mul(100))
    }

    async fn cancel(&self, reference: &str) -> Result<(), ProviderError> {
        // AIO has no call to void an unpaid order: it lapses at ECPay, and jinliu stops handing
        // out its form. A paid one must be refunded instead.
        match self.trade_info(reference).await {
            Ok(info) if info.trade_status == trade_status::PAID => Err(ProviderError::Refused(
                "the ECPay trade is already paid; refund it instead".into(),
            )),
            Ok(_) | Err(ProviderError::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn verify_notification(
        &self,
        n: &InboundNotification,
        _now: Timestamp,
    ) -> Result<VerifiedNotification, ProviderError> {
        // ECPay's result carries no signing timestamp (ECPay re-sends it for hours), so `now`
        // bounds nothing here.
        let fields = wire::parse_fields(&n.body);
        if !sign::verify(&fields, &self.hash_key, &self.hash_iv) {
            return Err(ProviderError::BadNotification("CheckMacValue does not match".into()));
        }
        let note = wire::ReturnNotification::from_fields(&fields)
            .ok_or_else(|| ProviderError::BadNotification("MerchantID, MerchantTradeNo or RtnCode missing".into()))?;
        if note.merchant_id != self.merchant_id {
            return Err(ProviderError::BadNotification(format!(
                "MerchantID {} is not this account's",
                note.merchant_id
            )));
        }
        if !valid_trade_no(&note.merchant_trade_no) {
            return Err(ProviderError::BadNotification("MerchantTradeNo is malformed".into()));
        }
        if note.simulate_paid && self.account.livemode {
            // A back-office simulated payment moved no money; it must never pay a live order.
            return Err(ProviderError::BadNotification(
                "SimulatePaid=1 on a live account".into(),
            ));
        }
        let status = if note.rtn_code == "1" {
            ProviderStatus::Succeeded {
                transaction_id: Some(note.trade_no.clone()).filter(|t| !t.is_empty()),
            }
        } else {
            ProviderStatus::Failed {
                reason: format!("ECPay RtnCode {}: {}", note.rtn_code, note.rtn_msg),
            }
        };
        let amount = note
            .trade_amt
            .and_then(|a| a.checked_mul(100))
            .and_then(|minor| Money::from_minor(minor, Currency::Twd).ok());
        Ok(VerifiedNotification {
            reference: note.merchant_trade_no,
            status,
            status_code: note.rtn_code,
            amount,
            trusted: true,
            ack: ACK.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests;
