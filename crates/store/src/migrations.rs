//! Embedded schema migrations, applied by `jinliu serve` at start and by `jinliu migrate`.
//!
//! Migrations are written out column by column (not derived from the entities) so that an old
//! migration never changes when an entity does. One definition serves SQLite, PostgreSQL and
//! MySQL: sea-query renders the dialect.

use sea_orm_migration::prelude::*;

/// The migrator holding every migration in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(M0001Initial),
            Box::new(M0002ProviderSync),
            Box::new(M0003Accounts),
            Box::new(M0004Users),
            Box::new(M0005Mfa),
            Box::new(M0006Audit),
            Box::new(M0007Webhooks),
            Box::new(M0009MerchantSettings),
            Box::new(M0010ProviderAccounts),
            Box::new(M0011KeyRing),
            Box::new(M0012AuditSeals),
            Box::new(M0013LeanerWrites),
            Box::new(M0014OneStatementTail),
        ]
    }

    fn migration_table_name() -> DynIden {
        "jinliu_migrations".into_iden()
    }
}

struct M0001Initial;

impl MigrationName for M0001Initial {
    fn name(&self) -> &str {
        "m0001_initial"
    }
}

#[derive(DeriveIden)]
enum Orders {
    Table,
    Id,
    MerchantId,
    Livemode,
    OrderNumber,
    Description,
    AmountMinor,
    Currency,
    Items,
    CustomerEmail,
    CustomerPhone,
    Metadata,
    Status,
    PaidBy,
    RefundedMinor,
    Version,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Payments {
    Table,
    Id,
    MerchantId,
    Livemode,
    OrderId,
    Provider,
    ProviderAccount,
    Method,
    AmountMinor,
    Currency,
    Status,
    ProviderReference,
    ProviderTransactionId,
    PaymentToken,
    QrCodeData,
    ClientSecret,
    SuccessUrl,
    FailureUrl,
    Description,
    CustomerEmail,
    CustomerPhone,
    Metadata,
    RefundedMinor,
    RefundPendingMinor,
    LateSuccess,
    Duplicate,
    Version,
    ExpiresAt,
    CompletedAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Refunds {
    Table,
    Id,
    MerchantId,
    Livemode,
    PaymentId,
    AmountMinor,
    Currency,
    Status,
    Reason,
    ProviderReference,
    FailureReason,
    Version,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Events {
    Table,
    Id,
    MerchantId,
    Livemode,
    EventType,
    ObjectId,
    ObjectVersion,
    Payload,
    CreatedAt,
}

#[derive(DeriveIden)]
enum IdempotencyKeys {
    Table,
    Scope,
    IdemKey,
    RequestHash,
    State,
    StatusCode,
    Body,
    CreatedAt,
    ExpiresAt,
}

/// Column helpers: ids are short ASCII, so VARCHAR with a length MySQL can index.
fn id_col<T: IntoIden>(c: T) -> ColumnDef {
    ColumnDef::new(c).string_len(64).not_null().take()
}
fn text_null<T: IntoIden>(c: T) -> ColumnDef {
    ColumnDef::new(c).text().null().take()
}
fn str_null<T: IntoIden>(c: T, len: u32) -> ColumnDef {
    ColumnDef::new(c).string_len(len).null().take()
}
fn str_col<T: IntoIden>(c: T, len: u32) -> ColumnDef {
    ColumnDef::new(c).string_len(len).not_null().take()
}
fn int_col<T: IntoIden>(c: T) -> ColumnDef {
    ColumnDef::new(c).big_integer().not_null().take()
}
fn bool_col<T: IntoIden>(c: T) -> ColumnDef {
    ColumnDef::new(c).boolean().not_null().take()
}

#[async_trait::async_trait]
impl MigrationTrait for M0001Initial {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Orders::Table)
                .col(id_col(Orders::Id).primary_key())
                .col(id_col(Orders::MerchantId))
                .col(bool_col(Orders::Livemode))
                .col(str_col(Orders::OrderNumber, 32))
                .col(text_null(Orders::Description))
                .col(int_col(Orders::AmountMinor))
                .col(str_col(Orders::Currency, 3))
                .col(text_null(Orders::Items))
                .col(str_null(Orders::CustomerEmail, 320))
                .col(str_null(Orders::CustomerPhone, 64))
                .col(text_null(Orders::Metadata))
                .col(str_col(Orders::Status, 32))
                .col(str_null(Orders::PaidBy, 64))
                .col(int_col(Orders::RefundedMinor))
                .col(int_col(Orders::Version))
                .col(int_col(Orders::CreatedAt))
                .col(int_col(Orders::UpdatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("orders_order_number")
                .table(Orders::Table)
                .col(Orders::OrderNumber)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("orders_merchant_status_created")
                .table(Orders::Table)
                .col(Orders::MerchantId)
                .col(Orders::Status)
                .col(Orders::CreatedAt)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("orders_merchant_created")
                .table(Orders::Table)
                .col(Orders::MerchantId)
                .col(Orders::CreatedAt)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Payments::Table)
                .col(id_col(Payments::Id).primary_key())
                .col(id_col(Payments::MerchantId))
                .col(bool_col(Payments::Livemode))
                .col(id_col(Payments::OrderId))
                .col(str_col(Payments::Provider, 32))
                .col(str_col(Payments::ProviderAccount, 64))
                .col(str_col(Payments::Method, 32))
                .col(int_col(Payments::AmountMinor))
                .col(str_col(Payments::Currency, 3))
                .col(str_col(Payments::Status, 32))
                .col(str_null(Payments::ProviderReference, 128))
                .col(str_null(Payments::ProviderTransactionId, 128))
                .col(str_null(Payments::PaymentToken, 128))
                .col(text_null(Payments::QrCodeData))
                .col(str_col(Payments::ClientSecret, 160))
                .col(text_null(Payments::SuccessUrl))
                .col(text_null(Payments::FailureUrl))
                .col(text_null(Payments::Description))
                .col(str_null(Payments::CustomerEmail, 320))
                .col(str_null(Payments::CustomerPhone, 64))
                .col(text_null(Payments::Metadata))
                .col(int_col(Payments::RefundedMinor))
                .col(int_col(Payments::RefundPendingMinor))
                .col(bool_col(Payments::LateSuccess))
                .col(bool_col(Payments::Duplicate))
                .col(int_col(Payments::Version))
                .col(int_col(Payments::ExpiresAt))
                .col(ColumnDef::new(Payments::CompletedAt).big_integer().null())
                .col(int_col(Payments::CreatedAt))
                .col(int_col(Payments::UpdatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("payments_merchant_status_created")
                .table(Payments::Table)
                .col(Payments::MerchantId)
                .col(Payments::Status)
                .col(Payments::CreatedAt)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("payments_order")
                .table(Payments::Table)
                .col(Payments::OrderId)
                .to_owned(),
        )
        .await?;
        // A provider's reference names one payment per provider account: notifications are
        // matched through it, so two rows with the same reference would be ambiguous money.
        m.create_index(
            Index::create()
                .name("payments_provider_reference")
                .table(Payments::Table)
                .col(Payments::Provider)
                .col(Payments::ProviderAccount)
                .col(Payments::ProviderReference)
                .unique()
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Refunds::Table)
                .col(id_col(Refunds::Id).primary_key())
                .col(id_col(Refunds::MerchantId))
                .col(bool_col(Refunds::Livemode))
                .col(id_col(Refunds::PaymentId))
                .col(int_col(Refunds::AmountMinor))
                .col(str_col(Refunds::Currency, 3))
                .col(str_col(Refunds::Status, 32))
                .col(text_null(Refunds::Reason))
                .col(str_null(Refunds::ProviderReference, 128))
                .col(text_null(Refunds::FailureReason))
                .col(int_col(Refunds::Version))
                .col(int_col(Refunds::CreatedAt))
                .col(int_col(Refunds::UpdatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("refunds_payment")
                .table(Refunds::Table)
                .col(Refunds::PaymentId)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("refunds_merchant_status_created")
                .table(Refunds::Table)
                .col(Refunds::MerchantId)
                .col(Refunds::Status)
                .col(Refunds::CreatedAt)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Events::Table)
                .col(id_col(Events::Id).primary_key())
                .col(id_col(Events::MerchantId))
                .col(bool_col(Events::Livemode))
                .col(str_col(Events::EventType, 64))
                .col(id_col(Events::ObjectId))
                .col(int_col(Events::ObjectVersion))
                .col(ColumnDef::new(Events::Payload).text().not_null())
                .col(int_col(Events::CreatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("events_object")
                .table(Events::Table)
                .col(Events::ObjectId)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(IdempotencyKeys::Table)
                .col(str_col(IdempotencyKeys::Scope, 64))
                .col(str_col(IdempotencyKeys::IdemKey, 255))
                .col(str_col(IdempotencyKeys::RequestHash, 64))
                .col(str_col(IdempotencyKeys::State, 16))
                .col(ColumnDef::new(IdempotencyKeys::StatusCode).integer().not_null())
                .col(text_null(IdempotencyKeys::Body))
                .col(int_col(IdempotencyKeys::CreatedAt))
                .col(int_col(IdempotencyKeys::ExpiresAt))
                .primary_key(
                    Index::create()
                        .col(IdempotencyKeys::Scope)
                        .col(IdempotencyKeys::IdemKey),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idempotency_keys_expires")
                .table(IdempotencyKeys::Table)
                .col(IdempotencyKeys::ExpiresAt)
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}

/// Provider notifications already applied (deduplication) and the status-sync job queue.
struct M0002ProviderSync;

impl MigrationName for M0002ProviderSync {
    fn name(&self) -> &str {
        "m0002_provider_sync"
    }
}

#[derive(DeriveIden)]
enum ProviderNotifications {
    Table,
    Provider,
    Account,
    Reference,
    StatusCode,
    PaymentId,
    ReceivedAt,
}

#[derive(DeriveIden)]
enum SyncJobs {
    Table,
    ObjectId,
    Kind,
    NextAt,
    Attempts,
    LeaseOwner,
    LeaseUntil,
}

#[async_trait::async_trait]
impl MigrationTrait for M0002ProviderSync {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(ProviderNotifications::Table)
                .col(str_col(ProviderNotifications::Provider, 16))
                .col(str_col(ProviderNotifications::Account, 64))
                .col(str_col(ProviderNotifications::Reference, 64))
                .col(str_col(ProviderNotifications::StatusCode, 64))
                .col(id_col(ProviderNotifications::PaymentId))
                .col(int_col(ProviderNotifications::ReceivedAt))
                .primary_key(
                    Index::create()
                        .col(ProviderNotifications::Provider)
                        .col(ProviderNotifications::Account)
                        .col(ProviderNotifications::Reference)
                        .col(ProviderNotifications::StatusCode),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(SyncJobs::Table)
                .col(id_col(SyncJobs::ObjectId).primary_key())
                .col(str_col(SyncJobs::Kind, 16))
                .col(int_col(SyncJobs::NextAt))
                .col(int_col(SyncJobs::Attempts))
                .col(str_null(SyncJobs::LeaseOwner, 64))
                .col(int_col(SyncJobs::LeaseUntil))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("sync_jobs_next_at")
                .table(SyncJobs::Table)
                .col(SyncJobs::NextAt)
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}

/// Merchants (tenants) and their API keys.
struct M0003Accounts;

impl MigrationName for M0003Accounts {
    fn name(&self) -> &str {
        "m0003_accounts"
    }
}

#[derive(DeriveIden)]
enum Merchants {
    Table,
    Id,
    Name,
    Status,
    DefaultCurrency,
    Timezone,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    MerchantId,
    Kind,
    Livemode,
    Prefix,
    KeyHash,
    Permissions,
    Description,
    ExpiresAt,
    RevokedAt,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for M0003Accounts {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Merchants::Table)
                .col(id_col(Merchants::Id).primary_key())
                .col(str_col(Merchants::Name, 200))
                .col(str_col(Merchants::Status, 16))
                .col(str_col(Merchants::DefaultCurrency, 3))
                .col(str_col(Merchants::Timezone, 64))
                .col(int_col(Merchants::CreatedAt))
                .col(int_col(Merchants::UpdatedAt))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(ApiKeys::Table)
                .col(id_col(ApiKeys::Id).primary_key())
                .col(id_col(ApiKeys::MerchantId))
                .col(str_col(ApiKeys::Kind, 16))
                .col(bool_col(ApiKeys::Livemode))
                .col(str_col(ApiKeys::Prefix, 32))
                .col(str_col(ApiKeys::KeyHash, 64))
                .col(text_null(ApiKeys::Permissions))
                .col(str_null(ApiKeys::Description, 200))
                .col(ColumnDef::new(ApiKeys::ExpiresAt).big_integer().null())
                .col(ColumnDef::new(ApiKeys::RevokedAt).big_integer().null())
                .col(int_col(ApiKeys::CreatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("api_keys_hash")
                .table(ApiKeys::Table)
                .col(ApiKeys::KeyHash)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("api_keys_merchant")
                .table(ApiKeys::Table)
                .col(ApiKeys::MerchantId)
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}

/// Users and their refresh tokens.
struct M0004Users;

impl MigrationName for M0004Users {
    fn name(&self) -> &str {
        "m0004_users"
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    PasswordHash,
    Role,
    MerchantId,
    Status,
    FailedLogins,
    LockedUntil,
    LastLoginAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    TokenHash,
    UserId,
    Family,
    ExpiresAt,
    UsedAt,
    RevokedAt,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for M0004Users {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Users::Table)
                .col(id_col(Users::Id).primary_key())
                .col(str_col(Users::Email, 254))
                .col(str_col(Users::PasswordHash, 255))
                .col(str_col(Users::Role, 32))
                .col(str_null(Users::MerchantId, 64))
                .col(str_col(Users::Status, 16))
                .col(int_col(Users::FailedLogins))
                .col(ColumnDef::new(Users::LockedUntil).big_integer().null())
                .col(ColumnDef::new(Users::LastLoginAt).big_integer().null())
                .col(int_col(Users::CreatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("users_email")
                .table(Users::Table)
                .col(Users::Email)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(RefreshTokens::Table)
                .col(str_col(RefreshTokens::TokenHash, 64).primary_key())
                .col(id_col(RefreshTokens::UserId))
                .col(str_col(RefreshTokens::Family, 64))
                .col(int_col(RefreshTokens::ExpiresAt))
                .col(ColumnDef::new(RefreshTokens::UsedAt).big_integer().null())
                .col(ColumnDef::new(RefreshTokens::RevokedAt).big_integer().null())
                .col(int_col(RefreshTokens::CreatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("refresh_tokens_family")
                .table(RefreshTokens::Table)
                .col(RefreshTokens::Family)
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}

/// TOTP second factor on users.
struct M0005Mfa;

impl MigrationName for M0005Mfa {
    fn name(&self) -> &str {
        "m0005_mfa"
    }
}

#[derive(DeriveIden)]
enum UsersMfa {
    #[sea_orm(iden = "users")]
    Table,
    TotpSecret,
    TotpEnabled,
    TotpLastStep,
    RecoveryCodes,
}

#[async_trait::async_trait]
impl MigrationTrait for M0005Mfa {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one column at a time.
        for col in [
            ColumnDef::new(UsersMfa::TotpSecret).text().null().take(),
            ColumnDef::new(UsersMfa::TotpEnabled)
                .boolean()
                .not_null()
                .default(false)
                .take(),
            ColumnDef::new(UsersMfa::TotpLastStep)
                .big_integer()
                .not_null()
                .default(0)
                .take(),
            ColumnDef::new(UsersMfa::RecoveryCodes).text().null().take(),
        ] {
            m.alter_table(Table::alter().table(UsersMfa::Table).add_column(col).to_owned())
                .await?;
        }
        Ok(())
    }
}

/// The audit log and the leases of singleton workers (the audit sealer).
struct M0006Audit;

impl MigrationName for M0006Audit {
    fn name(&self) -> &str {
        "m0006_audit"
    }
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Id,
    Seq,
    Mac,
    At,
    MerchantId,
    ActorType,
    ActorId,
    Role,
    Action,
    TargetType,
    TargetId,
    Digest,
    Detail,
    Outcome,
    RequestId,
    Ip,
    UserAgent,
}

#[derive(DeriveIden)]
enum WorkerLeases {
    Table,
    Name,
    Owner,
    LeaseUntil,
}

#[async_trait::async_trait]
impl MigrationTrait for M0006Audit {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(AuditLog::Table)
                .col(id_col(AuditLog::Id).primary_key())
                // Both stay NULL until the sealer chains the row.
                .col(ColumnDef::new(AuditLog::Seq).big_integer().null())
                .col(str_null(AuditLog::Mac, 64))
                .col(int_col(AuditLog::At))
                .col(str_null(AuditLog::MerchantId, 64))
                .col(str_col(AuditLog::ActorType, 16))
                .col(str_null(AuditLog::ActorId, 128))
                .col(str_null(AuditLog::Role, 32))
                .col(str_col(AuditLog::Action, 64))
                .col(str_col(AuditLog::TargetType, 32))
                .col(str_col(AuditLog::TargetId, 128))
                .col(str_col(AuditLog::Digest, 64))
                .col(ColumnDef::new(AuditLog::Detail).text().not_null())
                .col(str_col(AuditLog::Outcome, 64))
                .col(str_null(AuditLog::RequestId, 64))
                .col(str_null(AuditLog::Ip, 64))
                .col(str_null(AuditLog::UserAgent, 200))
                .to_owned(),
        )
        .await?;
        // Unique: two sealers (a lease lost mid-batch) can never give one number twice.
        m.create_index(
            Index::create()
                .name("audit_log_seq")
                .table(AuditLog::Table)
                .col(AuditLog::Seq)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("audit_log_merchant_at")
                .table(AuditLog::Table)
                .col(AuditLog::MerchantId)
                .col(AuditLog::At)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(WorkerLeases::Table)
                .col(str_col(WorkerLeases::Name, 64).primary_key())
                .col(str_col(WorkerLeases::Owner, 128))
                .col(int_col(WorkerLeases::LeaseUntil))
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}

/// Merchant webhooks: endpoints, messages, attempts, the relay's mark on each outbox row, and
/// named leases for singleton workers (the relay).
struct M0007Webhooks;

impl MigrationName for M0007Webhooks {
    fn name(&self) -> &str {
        "m0007_webhooks"
    }
}

#[derive(DeriveIden)]
enum EventsRelay {
    #[sea_orm(iden = "events")]
    Table,
    WebhooksDispatched,
    Id,
}

#[derive(DeriveIden)]
enum WebhookEndpoints {
    Table,
    Id,
    MerchantId,
    Livemode,
    Url,
    Description,
    EventTypes,
    Status,
    DisabledReason,
    FailingSince,
    Secret,
    PreviousSecret,
    PreviousSecretUntil,
    Version,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum WebhookMessages {
    Table,
    Id,
    EndpointId,
    MerchantId,
    Livemode,
    EventId,
    EventType,
    Payload,
    Status,
    Attempts,
    SeriesAttempts,
    NextAttemptAt,
    LeaseOwner,
    LeaseUntil,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum WebhookAttempts {
    Table,
    Id,
    MessageId,
    EndpointId,
    AttemptedAt,
    StatusCode,
    DurationMs,
    ResponseBody,
    Error,
    Succeeded,
    NextAttemptAt,
}

/// The same table as m0006's (the audit sealer's lease), created here only where it is missing.
#[derive(DeriveIden)]
enum WebhookWorkerLeases {
    #[sea_orm(iden = "worker_leases")]
    Table,
    Name,
    Owner,
    LeaseUntil,
}

#[async_trait::async_trait]
impl MigrationTrait for M0007Webhooks {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // Existing rows start undispatched: the relay walks them once and, as no endpoint is older
        // than they are, makes no message.
        m.alter_table(
            Table::alter()
                .table(EventsRelay::Table)
                .add_column(
                    ColumnDef::new(EventsRelay::WebhooksDispatched)
                        .boolean()
                        .not_null()
                        .default(false)
                        .take(),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("events_webhooks_dispatched")
                .table(EventsRelay::Table)
                .col(EventsRelay::WebhooksDispatched)
                .col(EventsRelay::Id)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(WebhookEndpoints::Table)
                .col(id_col(WebhookEndpoints::Id).primary_key())
                .col(id_col(WebhookEndpoints::MerchantId))
                .col(bool_col(WebhookEndpoints::Livemode))
                .col(ColumnDef::new(WebhookEndpoints::Url).text().not_null())
                .col(text_null(WebhookEndpoints::Description))
                .col(text_null(WebhookEndpoints::EventTypes))
                .col(str_col(WebhookEndpoints::Status, 16))
                .col(text_null(WebhookEndpoints::DisabledReason))
                .col(ColumnDef::new(WebhookEndpoints::FailingSince).big_integer().null())
                .col(ColumnDef::new(WebhookEndpoints::Secret).text().not_null())
                .col(text_null(WebhookEndpoints::PreviousSecret))
                .col(
                    ColumnDef::new(WebhookEndpoints::PreviousSecretUntil)
                        .big_integer()
                        .null(),
                )
                .col(int_col(WebhookEndpoints::Version))
                .col(int_col(WebhookEndpoints::CreatedAt))
                .col(int_col(WebhookEndpoints::UpdatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("webhook_endpoints_merchant")
                .table(WebhookEndpoints::Table)
                .col(WebhookEndpoints::MerchantId)
                .col(WebhookEndpoints::Livemode)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(WebhookMessages::Table)
                .col(id_col(WebhookMessages::Id).primary_key())
                .col(id_col(WebhookMessages::EndpointId))
                .col(id_col(WebhookMessages::MerchantId))
                .col(bool_col(WebhookMessages::Livemode))
                .col(id_col(WebhookMessages::EventId))
                .col(str_col(WebhookMessages::EventType, 64))
                .col(ColumnDef::new(WebhookMessages::Payload).text().not_null())
                .col(str_col(WebhookMessages::Status, 16))
                .col(int_col(WebhookMessages::Attempts))
                .col(int_col(WebhookMessages::SeriesAttempts))
                .col(ColumnDef::new(WebhookMessages::NextAttemptAt).big_integer().null())
                .col(str_null(WebhookMessages::LeaseOwner, 64))
                .col(int_col(WebhookMessages::LeaseUntil))
                .col(int_col(WebhookMessages::CreatedAt))
                .col(int_col(WebhookMessages::UpdatedAt))
                .to_owned(),
        )
        .await?;
        // One message per event and endpoint, whatever races the relay loses.
        m.create_index(
            Index::create()
                .name("webhook_messages_endpoint_event")
                .table(WebhookMessages::Table)
                .col(WebhookMessages::EndpointId)
                .col(WebhookMessages::EventId)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("webhook_messages_due")
                .table(WebhookMessages::Table)
                .col(WebhookMessages::Status)
                .col(WebhookMessages::NextAttemptAt)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(WebhookAttempts::Table)
                .col(id_col(WebhookAttempts::Id).primary_key())
                .col(id_col(WebhookAttempts::MessageId))
                .col(id_col(WebhookAttempts::EndpointId))
                .col(int_col(WebhookAttempts::AttemptedAt))
                .col(ColumnDef::new(WebhookAttempts::StatusCode).integer().null())
                .col(int_col(WebhookAttempts::DurationMs))
                .col(text_null(WebhookAttempts::ResponseBody))
                .col(text_null(WebhookAttempts::Error))
                .col(bool_col(WebhookAttempts::Succeeded))
                .col(ColumnDef::new(WebhookAttempts::NextAttemptAt).big_integer().null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("webhook_attempts_message")
                .table(WebhookAttempts::Table)
                .col(WebhookAttempts::MessageId)
                .col(WebhookAttempts::AttemptedAt)
                .to_owned(),
        )
        .await?;
        // Named leases of singleton workers; m0006 (audit) makes the same table, so this one only
        // fills the gap on a database without it.
        m.create_table(
            Table::create()
                .table(WebhookWorkerLeases::Table)
                .if_not_exists()
                .col(str_col(WebhookWorkerLeases::Name, 64).primary_key())
                .col(str_col(WebhookWorkerLeases::Owner, 128))
                .col(int_col(WebhookWorkerLeases::LeaseUntil))
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}

/// Merchant settings: default providers and amount limits (JSON), and the sealed notify secret.
/// (m0007 and m0008 are the webhook and realtime migrations.)
struct M0009MerchantSettings;

impl MigrationName for M0009MerchantSettings {
    fn name(&self) -> &str {
        "m0009_merchant_settings"
    }
}

#[derive(DeriveIden)]
enum MerchantsSettings {
    #[sea_orm(iden = "merchants")]
    Table,
    Settings,
    NotifySecret,
}

#[async_trait::async_trait]
impl MigrationTrait for M0009MerchantSettings {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // Nullable TEXT: MySQL gives TEXT columns no default; NULL reads as "no settings".
        for col in [
            ColumnDef::new(MerchantsSettings::Settings).text().null().take(),
            ColumnDef::new(MerchantsSettings::NotifySecret).text().null().take(),
        ] {
            m.alter_table(
                Table::alter()
                    .table(MerchantsSettings::Table)
                    .add_column(col)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}

struct M0010ProviderAccounts;

impl MigrationName for M0010ProviderAccounts {
    fn name(&self) -> &str {
        "m0010_provider_accounts"
    }
}

#[derive(DeriveIden)]
enum ProviderAccounts {
    Table,
    Id,
    MerchantId,
    Livemode,
    Provider,
    BaseUrl,
    Credentials,
    CredentialKeys,
    IsDefault,
    Status,
    Description,
    Version,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for M0010ProviderAccounts {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(ProviderAccounts::Table)
                .col(id_col(ProviderAccounts::Id).primary_key())
                .col(id_col(ProviderAccounts::MerchantId))
                .col(bool_col(ProviderAccounts::Livemode))
                .col(str_col(ProviderAccounts::Provider, 16))
                .col(text_null(ProviderAccounts::BaseUrl))
                .col(ColumnDef::new(ProviderAccounts::Credentials).text().not_null())
                .col(ColumnDef::new(ProviderAccounts::CredentialKeys).text().not_null())
                .col(bool_col(ProviderAccounts::IsDefault))
                .col(str_col(ProviderAccounts::Status, 16))
                .col(text_null(ProviderAccounts::Description))
                .col(int_col(ProviderAccounts::Version))
                .col(int_col(ProviderAccounts::CreatedAt))
                .col(int_col(ProviderAccounts::UpdatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("provider_accounts_merchant")
                .table(ProviderAccounts::Table)
                .col(ProviderAccounts::MerchantId)
                .col(ProviderAccounts::Livemode)
                .col(ProviderAccounts::Provider)
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}

struct M0011KeyRing;

impl MigrationName for M0011KeyRing {
    fn name(&self) -> &str {
        "m0011_key_ring"
    }
}

#[derive(DeriveIden)]
enum KeyRing {
    Table,
    Kid,
    Purpose,
    Seq,
    Wrapped,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for M0011KeyRing {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(KeyRing::Table)
                .col(str_col(KeyRing::Kid, 16).primary_key())
                .col(str_col(KeyRing::Purpose, 16))
                .col(int_col(KeyRing::Seq))
                .col(ColumnDef::new(KeyRing::Wrapped).text().not_null())
                .col(int_col(KeyRing::CreatedAt))
                .to_owned(),
        )
        .await
    }
}

/// The audit chain moves out of the audit rows: the sealer inserts narrow `audit_seals` rows
/// instead of rewriting each wide `audit_log` row (a new version of every column and of all
/// three of its index entries), and finds its work in a narrow `audit_pending` queue the writer
/// fills with each row's id and hash, instead of scanning `audit_log` for `seq IS NULL` past
/// every version it had rewritten since the last vacuum (docs/performance.md, run O). Existing
/// seals and unsealed rows move across, so the chain verifies the same before and after.
struct M0012AuditSeals;

impl MigrationName for M0012AuditSeals {
    fn name(&self) -> &str {
        "m0012_audit_seals"
    }
}

#[derive(DeriveIden)]
enum AuditSeals {
    Table,
    Seq,
    AuditId,
    RowHash,
    Mac,
}

#[derive(DeriveIden)]
enum AuditPending {
    Table,
    AuditId,
    RowHash,
}

#[async_trait::async_trait]
impl MigrationTrait for M0012AuditSeals {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // `seq` is the key: two sealers (a lease lost mid-pass) can never give one number twice,
        // and `audit_id` is unique: no row is sealed twice.
        m.create_table(
            Table::create()
                .table(AuditSeals::Table)
                .col(int_col(AuditSeals::Seq).primary_key())
                .col(id_col(AuditSeals::AuditId))
                // NULL for the links moved across from `audit_log` (their MAC covers the fields).
                .col(str_null(AuditSeals::RowHash, 64))
                .col(str_col(AuditSeals::Mac, 64))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("audit_seals_audit_id")
                .table(AuditSeals::Table)
                .col(AuditSeals::AuditId)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(AuditPending::Table)
                .col(id_col(AuditPending::AuditId).primary_key())
                // NULL for the rows queued here: the sealer reads those rows to hash them.
                .col(str_null(AuditPending::RowHash, 64))
                .to_owned(),
        )
        .await?;
        m.exec_stmt(
            Query::insert()
                .into_table(AuditSeals::Table)
                .columns([AuditSeals::Seq, AuditSeals::AuditId, AuditSeals::Mac])
                .select_from(
                    Query::select()
                        .columns([AuditLog::Seq, AuditLog::Id, AuditLog::Mac])
                        .from(AuditLog::Table)
                        .and_where(Expr::col(AuditLog::Seq).is_not_null())
                        .to_owned(),
                )
                .map_err(|e| DbErr::Migration(e.to_string()))?
                .to_owned(),
        )
        .await?;
        m.exec_stmt(
            Query::insert()
                .into_table(AuditPending::Table)
                .columns([AuditPending::AuditId])
                .select_from(
                    Query::select()
                        .column(AuditLog::Id)
                        .from(AuditLog::Table)
                        .and_where(Expr::col(AuditLog::Seq).is_null())
                        .to_owned(),
                )
                .map_err(|e| DbErr::Migration(e.to_string()))?
                .to_owned(),
        )
        .await?;
        m.drop_index(Index::drop().name("audit_log_seq").table(AuditLog::Table).to_owned())
            .await?;
        // One column per statement: SQLite alters one thing at a time.
        for col in [AuditLog::Seq, AuditLog::Mac] {
            m.alter_table(Table::alter().table(AuditLog::Table).drop_column(col).to_owned())
                .await?;
        }
        Ok(())
    }
}

struct M0013LeanerWrites;

impl MigrationName for M0013LeanerWrites {
    fn name(&self) -> &str {
        "m0013_leaner_writes"
    }
}

/// The relay's index on PostgreSQL and SQLite, which have partial indexes: only the events an
/// older jinliu left undispatched. The writer inserts every event already dispatched, so the
/// full `(webhooks_dispatched, id)` index cost every event an index entry that no query used;
/// the partial one stays empty. Its predicate is written exactly as the relay's query writes its
/// filter (`crate::webhooks::undispatched`), which is what lets the planners use it. MySQL has
/// no partial indexes and keeps the full one.
pub(crate) const UNDISPATCHED_INDEX: &str =
    "CREATE INDEX events_undispatched ON events (id) WHERE webhooks_dispatched = FALSE";

#[async_trait::async_trait]
impl MigrationTrait for M0013LeanerWrites {
    /// In one transaction on SQLite too (sea-orm-migration wraps only PostgreSQL's by default): a
    /// start that died between the new index and the drop of the old would otherwise leave an
    /// index that makes every later run of this migration fail.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        match m.get_database_backend() {
            sea_orm::DbBackend::MySql => return Ok(()),
            sea_orm::DbBackend::Postgres => {
                // Room in each page for a new version of its rows: a payment attempt bumps its
                // order's `version` (no indexed column), which PostgreSQL can then write on the
                // same page without new index entries (a HOT update). At the default of 100
                // about a third of those bumps found their page full. Pages written from now on
                // get the room; existing ones only when the table is rewritten.
                db.execute_unprepared("ALTER TABLE orders SET (fillfactor = 90)")
                    .await?;
            }
            _ => {}
        }
        db.execute_unprepared(UNDISPATCHED_INDEX).await?;
        m.drop_index(
            Index::drop()
                .name("events_webhooks_dispatched")
                .table(EventsRelay::Table)
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}

struct M0014OneStatementTail;

impl MigrationName for M0014OneStatementTail {
    fn name(&self) -> &str {
        "m0014_one_statement_tail"
    }
}

/// PostgreSQL only: two functions that let the writer's batch tail (`persist::write_together`)
/// be the whole batch, one statement with no `BEGIN` or `COMMIT` around it.
///
/// - `jinliu_expect_claims(claimed, expected)` returns `claimed`, or fails the statement with
///   SQLSTATE 40001 (`serialization_failure`, which the store reads as a conflict) when an order
///   claim missed. A statement that fails is rolled back whole, so a miss leaves nothing written
///   even when no transaction surrounds it. An expression like `1 / 0` would not do: the planner
///   folds constants, and would fail every statement.
/// - `jinliu_new_id(prefix)` makes an id of the shape `jinliu_domain` generates: the prefix and
///   a UUIDv7 in hex (48 bits of milliseconds, the version nibble `7`, then the random bits and
///   variant of a `gen_random_uuid()`, built in from PostgreSQL 13), for the webhook messages
///   the statement makes itself. Its time is the database server's clock, not the node's, and
///   ids made in the same millisecond are in no particular order (`Uuid::now_v7` orders those
///   made by one process); message ids are only ever paged in time order to the millisecond.
const PG_TAIL_FUNCTIONS: [&str; 2] = [
    "CREATE OR REPLACE FUNCTION jinliu_expect_claims(claimed bigint, expected bigint) RETURNS bigint \
     LANGUAGE plpgsql AS $$ BEGIN \
     IF claimed IS DISTINCT FROM expected THEN \
     RAISE EXCEPTION 'claimed % of % orders: an order changed since it was read', claimed, expected \
     USING ERRCODE = 'serialization_failure'; \
     END IF; RETURN claimed; END $$",
    "CREATE OR REPLACE FUNCTION jinliu_new_id(prefix text) RETURNS text LANGUAGE sql VOLATILE AS $$ \
     SELECT prefix || lpad(to_hex(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0') \
     || '7' || substr(replace(gen_random_uuid()::text, '-', ''), 14) $$",
];

#[async_trait::async_trait]
impl MigrationTrait for M0014OneStatementTail {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        if m.get_database_backend() == sea_orm::DbBackend::Postgres {
            for sql in PG_TAIL_FUNCTIONS {
                m.get_connection().execute_unprepared(sql).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use jinliu_testkit::{Engine, TestDb, engines};
    use sea_orm::{ConnectionTrait, Database};
    use sea_orm_migration::MigratorTrait;

    use super::Migrator;
    use crate::audit::{AuditEntry, chain_mac};
    use crate::{AuditCheckpoint, Store, StoreConfig};

    const KEY: &[u8] = b"migration test chain key";

    /// An audit row as m0006 stored it, with its seal (if any) in its own columns.
    fn old_row(n: i64, sealed: Option<(i64, &str)>) -> (AuditEntry, String) {
        let e = AuditEntry {
            id: format!("aud_{n:026}"),
            seq: None,
            mac: None,
            at: 1_700_000_000_000 + n,
            merchant_id: Some("mer_1".into()),
            actor_type: "cli".into(),
            actor_id: None,
            role: None,
            action: "order.create".into(),
            target_type: "order".into(),
            target_id: format!("ord_{n}"),
            digest: "00".into(),
            detail: "{}".into(),
            outcome: "ok".into(),
            request_id: None,
            ip: None,
            user_agent: None,
        };
        let (seq, mac) = match sealed {
            Some((seq, prev)) => (seq.to_string(), format!("'{}'", chain_mac(KEY, prev, seq, &e))),
            None => ("NULL".into(), "NULL".into()),
        };
        let sql = format!(
            "INSERT INTO audit_log (id, seq, mac, at, merchant_id, actor_type, action, target_type, target_id, \
             digest, detail, outcome) VALUES ('{}', {seq}, {mac}, {}, 'mer_1', 'cli', 'order.create', 'order', \
             '{}', '00', '{{}}', 'ok')",
            e.id, e.at, e.target_id
        );
        (e, sql)
    }

    async fn moving_the_chain_out_of_the_audit_rows_keeps_it_verifiable_on(engine: Engine) {
        if !engines().contains(&engine) {
            return;
        }
        let db = TestDb::new(engine).await;
        let conn = Database::connect(&db.url)
            .await
            .unwrap_or_else(|e| panic!("connect: {e}"));
        let before = Migrator::migrations()
            .iter()
            .position(|m| m.name() == "m0012_audit_seals")
            .unwrap_or_else(|| panic!("m0012 is listed"));
        Migrator::up(&conn, Some(before as u32))
            .await
            .unwrap_or_else(|e| panic!("migrate to m0011: {e}"));
        // Two rows sealed by the old sealer, one still waiting.
        let (first, sql) = old_row(1, Some((1, "")));
        conn.execute_unprepared(&sql).await.unwrap_or_else(|e| panic!("{e}"));
        let first_mac = chain_mac(KEY, "", 1, &first);
        let (second, sql) = old_row(2, Some((2, &first_mac)));
        conn.execute_unprepared(&sql).await.unwrap_or_else(|e| panic!("{e}"));
        let head = AuditCheckpoint {
            seq: 2,
            mac: chain_mac(KEY, &first_mac, 2, &second),
        };
        let (_, sql) = old_row(3, None);
        conn.execute_unprepared(&sql).await.unwrap_or_else(|e| panic!("{e}"));

        Migrator::up(&conn, None)
            .await
            .unwrap_or_else(|e| panic!("migrate: {e}"));
        assert!(
            conn.execute_unprepared("SELECT seq FROM audit_log").await.is_err(),
            "the old seal columns are gone"
        );
        let store = Store::connect(&StoreConfig::new(&db.url))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let r = store
            .verify_audit(KEY, std::slice::from_ref(&head))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((r.checked, r.unsealed, r.problem), (2, 1, None), "the old seals verify");
        assert_eq!(
            store.audit_head().await.unwrap_or_else(|e| panic!("{e}")),
            Some(head.clone())
        );
        let pass = store
            .seal_audit(KEY, "node-a", chrono::Utc::now(), 30_000, 100)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (pass.sealed, pass.head.map(|h| h.seq)),
            (1, Some(3)),
            "the waiting row is sealed next"
        );
        let r = store.verify_audit(KEY, &[head]).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((r.checked, r.unsealed, r.problem), (3, 0, None));
    }

    #[tokio::test]
    async fn moving_the_chain_out_of_the_audit_rows_keeps_it_verifiable_on_sqlite() {
        moving_the_chain_out_of_the_audit_rows_keeps_it_verifiable_on(Engine::Sqlite).await;
    }

    #[tokio::test]
    async fn moving_the_chain_out_of_the_audit_rows_keeps_it_verifiable_on_postgresql() {
        moving_the_chain_out_of_the_audit_rows_keeps_it_verifiable_on(Engine::Postgres).await;
    }

    #[tokio::test]
    async fn moving_the_chain_out_of_the_audit_rows_keeps_it_verifiable_on_mysql() {
        moving_the_chain_out_of_the_audit_rows_keeps_it_verifiable_on(Engine::MySql).await;
    }

    /// The plan of the relay's own query (values inlined), one line per row.
    async fn relay_plan(conn: &sea_orm::DatabaseConnection) -> String {
        use sea_orm::sea_query::{PostgresQueryBuilder, SqliteQueryBuilder};
        use sea_orm::{DbBackend, QueryTrait, Statement, TransactionTrait};
        let backend = conn.get_database_backend();
        let query = crate::webhooks::undispatched(100);
        let (explain, column) = match backend {
            DbBackend::Postgres => (
                format!("EXPLAIN {}", query.as_query().to_string(PostgresQueryBuilder)),
                "QUERY PLAN",
            ),
            _ => (
                format!("EXPLAIN QUERY PLAN {}", query.as_query().to_string(SqliteQueryBuilder)),
                "detail",
            ),
        };
        let txn = conn.begin().await.unwrap_or_else(|e| panic!("{e}"));
        if backend == DbBackend::Postgres {
            // A fresh table is tiny enough for a sequential scan to win on cost; this asks which
            // index the planner can use, not whether it would today.
            txn.execute_unprepared("SET LOCAL enable_seqscan = off")
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let rows = txn
            .query_all_raw(Statement::from_string(backend, explain))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        rows.iter()
            .map(|r| r.try_get::<String>("", column).unwrap_or_else(|e| panic!("{e}")))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A database of its own on `engine` at the latest schema, when `engine` is under test.
    async fn migrated(engine: Engine) -> Option<(TestDb, sea_orm::DatabaseConnection)> {
        if !engines().contains(&engine) {
            return None;
        }
        let db = TestDb::new(engine).await;
        let conn = Database::connect(&db.url)
            .await
            .unwrap_or_else(|e| panic!("connect: {e}"));
        Migrator::up(&conn, None)
            .await
            .unwrap_or_else(|e| panic!("migrate: {e}"));
        Some((db, conn))
    }

    async fn the_relays_query_reads_the_partial_index_of_undispatched_events_on(engine: Engine) {
        let Some((_db, conn)) = migrated(engine).await else {
            return;
        };
        let plan = relay_plan(&conn).await;
        assert!(plan.contains("events_undispatched"), "{plan}");
    }

    #[tokio::test]
    async fn the_relays_query_reads_the_partial_index_of_undispatched_events_on_sqlite() {
        the_relays_query_reads_the_partial_index_of_undispatched_events_on(Engine::Sqlite).await;
    }

    #[tokio::test]
    async fn the_relays_query_reads_the_partial_index_of_undispatched_events_on_postgresql() {
        the_relays_query_reads_the_partial_index_of_undispatched_events_on(Engine::Postgres).await;
    }

    /// MySQL has no partial indexes: it keeps the full one, which the relay's query still uses.
    #[tokio::test]
    async fn mysql_keeps_the_full_index_of_dispatched_flags() {
        let Some((_db, conn)) = migrated(Engine::MySql).await else {
            return;
        };
        let rows = conn
            .query_all_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::MySql,
                "SHOW INDEX FROM events WHERE Key_name = 'events_webhooks_dispatched'",
            ))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rows.len(), 2, "two columns: the flag and the id");
    }

    #[tokio::test]
    async fn orders_leave_a_tenth_of_each_page_free_for_new_row_versions_on_postgresql() {
        let Some((_db, conn)) = migrated(Engine::Postgres).await else {
            return;
        };
        let row = conn
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT array_to_string(reloptions, ',') AS o FROM pg_class WHERE relname = 'orders'",
            ))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no orders table"));
        assert_eq!(
            row.try_get::<String>("", "o").unwrap_or_else(|e| panic!("{e}")),
            "fillfactor=90"
        );
    }
}
