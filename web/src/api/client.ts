// The typed client of the few API routes the browser may call with a payment's client secret.
// Field names follow docs/api-spec.yaml (PaymentDto's public subset) and the realtime contract
// (docs/realtime.md): GET /api/payments/{id}?clientSecret=…, its SSE stream and qr.svg.

/** A payment's status as the server reports it. */
export type PaymentStatus =
  | 'pending'
  | 'processing'
  | 'completed'
  | 'failed'
  | 'expired'
  | 'cancelled'
  | 'partially_refunded'
  | 'refunded'

/** The public view of a payment: what a client secret may see (no personal data). */
export interface PublicPayment {
  id: string
  orderId: string
  merchantName?: string | null
  description?: string | null
  provider: string
  method: string
  /** Major units with the currency's decimals (68.00 HKD arrives as 68). */
  amount: number
  currency: string
  status: PaymentStatus
  paymentToken?: string | null
  /** JSON text: `{ url, token?, deepLink? }`. */
  qrCodeData?: string | null
  expiresAt: string
  version: number
  updatedAt: string
  livemode: boolean
  successUrl?: string | null
  failureUrl?: string | null
}

/** Every field of the public view, at run time: tests/spec.test.ts checks it against
 *  docs/api-spec.yaml (`PublicPaymentDto`), so the client cannot drift from the server. */
export const PUBLIC_PAYMENT_FIELDS = [
  'id',
  'orderId',
  'merchantName',
  'description',
  'provider',
  'method',
  'amount',
  'currency',
  'status',
  'paymentToken',
  'qrCodeData',
  'expiresAt',
  'version',
  'updatedAt',
  'livemode',
  'successUrl',
  'failureUrl',
] as const satisfies readonly (keyof PublicPayment)[]

/** One `paymentUpdate` event (SSE data, Socket.IO payload). */
export interface PaymentUpdate {
  paymentId: string
  orderId: string
  status: PaymentStatus
  amount: number
  currency: string
  version: number
  updatedAt: string
}

/** What the customer's phone should open, parsed from `qrCodeData`. */
export interface QrData {
  url?: string
  token?: string
  deepLink?: string
}

/** The error a failed API call throws: the HTTP status and the stable error code. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message)
  }
}

/** Where one payment's browser-facing routes live. `base` is jinliu's origin ('' = this page's). */
export class PaymentClient {
  constructor(
    readonly base: string,
    readonly paymentId: string,
    readonly clientSecret: string,
  ) {}

  private url(suffix: string): string {
    const id = encodeURIComponent(this.paymentId)
    const secret = encodeURIComponent(this.clientSecret)
    return `${this.base}/api/payments/${id}${suffix}?clientSecret=${secret}`
  }

  /** The public view (polling, and the first load). */
  async view(fetchImpl: typeof fetch = fetch): Promise<PublicPayment> {
    const res = await fetchImpl(this.url(''), { headers: { accept: 'application/json' }, cache: 'no-store' })
    const body = await res.json().catch(() => null)
    if (!res.ok) {
      throw new ApiError(res.status, body?.error?.code ?? 'http_error', body?.error?.message ?? res.statusText)
    }
    // The API answers `{ success, data }`; accept a bare object too.
    return (body?.data ?? body) as PublicPayment
  }

  /** The SSE stream of `paymentUpdate` events. */
  eventsUrl(): string {
    return this.url('/events')
  }

  /** The QR code image, drawn by the server. */
  qrUrl(): string {
    return this.url('/qr.svg')
  }
}

/** `qrCodeData` parsed; an unparsable value yields an empty object. The URLs become links on
 *  the page, so only an http(s) `url` and an app-scheme `deepLink` are kept: never `javascript:`
 *  or `data:`, whatever a provider sent. */
export function parseQr(text: string | null | undefined): QrData {
  if (!text) return {}
  let v: unknown
  try {
    v = JSON.parse(text)
  } catch {
    return {}
  }
  if (!v || typeof v !== 'object') return {}
  const o = v as Record<string, unknown>
  const str = (x: unknown) => (typeof x === 'string' ? x : undefined)
  const url = str(o.url)
  const deepLink = str(o.deepLink)
  return {
    url: url && /^https?:\/\//i.test(url) ? url : undefined,
    token: str(o.token),
    deepLink:
      deepLink && /^[a-z][a-z0-9+.-]*:/i.test(deepLink) && !/^(javascript|data|vbscript|file):/i.test(deepLink)
        ? deepLink
        : undefined,
  }
}
