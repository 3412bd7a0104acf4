// What each payment status means to the customer's page: still payable, paid, or over.

import type { PaymentStatus } from '../api/client'

/** The page's three outcomes. */
export type Outcome = 'open' | 'paid' | 'failed'

/** Paid includes later refunds: the customer did pay. */
export function outcomeOf(status: PaymentStatus): Outcome {
  switch (status) {
    case 'pending':
    case 'processing':
      return 'open'
    case 'completed':
    case 'partially_refunded':
    case 'refunded':
      return 'paid'
    default:
      return 'failed'
  }
}

/** Where the page sends the customer at the end: the merchant's URL for that outcome, if any.
 *  Only http(s) URLs are followed (the server validates them too). */
export function exitUrl(
  outcome: Outcome,
  p: { successUrl?: string | null; failureUrl?: string | null },
): string | null {
  const url = outcome === 'paid' ? p.successUrl : outcome === 'failed' ? p.failureUrl : null
  return url && /^https?:\/\//i.test(url) ? url : null
}

/** Seconds left until `expiresAt` (never negative). */
export function secondsLeft(expiresAt: string, nowMs: number): number {
  const end = Date.parse(expiresAt)
  if (Number.isNaN(end)) return 0
  return Math.max(0, Math.floor((end - nowMs) / 1000))
}

/** `m:ss`, or `h:mm:ss` from an hour up. */
export function formatCountdown(total: number): string {
  const h = Math.floor(total / 3600)
  const m = Math.floor((total % 3600) / 60)
  const s = total % 60
  const ss = String(s).padStart(2, '0')
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`
}

/** Decimals as jinliu moves the money: TWD in whole dollars (ISO 4217 says 2; no provider here
 *  takes cents), HKD in cents. */
const DECIMALS: Record<string, number> = { TWD: 0, HKD: 2 }

/** The amount as the customer reads it, with the currency's own decimals (TWD 0, HKD 2). */
export function formatAmount(amount: number, currency: string, locale: string): string {
  const digits = DECIMALS[currency]
  try {
    return new Intl.NumberFormat(locale, {
      style: 'currency',
      currency,
      currencyDisplay: 'code',
      minimumFractionDigits: digits,
      maximumFractionDigits: digits,
    })
      .format(amount)
      .replace(/\u00a0/g, ' ')
  } catch {
    return `${amount} ${currency}`
  }
}

/** A phone or tablet: the app deep link is offered as a button there. */
export function isMobile(nav: { userAgent: string; maxTouchPoints?: number }): boolean {
  return /Android|iPhone|iPad|iPod|Mobile/i.test(nav.userAgent)
}
