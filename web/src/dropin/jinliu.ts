// jinliu.js: mounts one payment's QR code and live status into an element of a merchant's page.
//
//   import { mount } from 'https://pay.example.com/js/jinliu.js'
//   mount('#pay', { paymentId, clientSecret, onSuccess, onError })
//
// The merchant's server creates the order and the payment with its secret key and hands the
// browser only the payment id and client secret; nothing here can choose or change the amount.
// No framework and no innerHTML: every text goes in through textContent.

import { ApiError, PaymentClient, parseQr, type PublicPayment } from '../api/client'
import { watchPayment, type Update } from '../live/watch'
import { formatAmount, outcomeOf } from '../lib/status'
import { messages, pickLocale, PROVIDER_NAMES, type Locale } from '../messages'

export interface MountOptions {
  paymentId: string
  clientSecret: string
  /** Called once when the payment is paid. */
  onSuccess?: (payment: PublicPayment) => void
  /** Called once when it failed, expired or was cancelled, or could not be loaded. */
  onError?: (error: { code: string; message: string; payment?: PublicPayment }) => void
  /** Every status change. */
  onUpdate?: (payment: PublicPayment) => void
  /** jinliu's origin; default: where this module was loaded from. */
  baseUrl?: string
  /** zh-TW, zh-HK or en; default from navigator.language. */
  locale?: Locale
}

export interface Mounted {
  destroy(): void
}

function moduleOrigin(): string {
  try {
    return new URL(import.meta.url).origin
  } catch {
    return ''
  }
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, css: Partial<CSSStyleDeclaration> = {}, text?: string) {
  const e = document.createElement(tag)
  Object.assign(e.style, css)
  if (text !== undefined) e.textContent = text
  return e
}

function fill(template: string, vars: Record<string, string>): string {
  return template.replace(/\{(\w+)\}/g, (_, k: string) => vars[k] ?? '')
}

/** Mounts the payment into `target` (an element or a selector). */
export function mount(target: Element | string, opts: MountOptions): Mounted {
  const root = typeof target === 'string' ? document.querySelector(target) : target
  if (!root) throw new Error(`jinliu.js: no element ${String(target)}`)
  const locale = opts.locale ?? pickLocale(navigator.language)
  const m = messages[locale]
  const client = new PaymentClient(opts.baseUrl ?? moduleOrigin(), opts.paymentId, opts.clientSecret)

  const box = el('div', {
    maxWidth: '360px',
    margin: '0 auto',
    padding: '16px',
    border: '1px solid #e5e7eb',
    borderRadius: '8px',
    textAlign: 'center',
    fontFamily: 'system-ui, sans-serif',
  })
  box.className = 'jinliu-payment'
  const amount = el('p', { fontSize: '1.4rem', fontWeight: '600', margin: '4px 0' })
  const img = el('img', { display: 'block', width: '220px', maxWidth: '100%', margin: '8px auto' })
  img.alt = 'QR code'
  img.dataset.jinliu = 'qr'
  const link = el('a', { display: 'inline-block', margin: '4px 0' })
  link.target = '_blank'
  link.rel = 'noopener noreferrer'
  link.dataset.jinliu = 'pay-link'
  const status = el('p', { padding: '8px', background: '#f9fafb', borderRadius: '4px' }, m.loading)
  status.dataset.jinliu = 'status'
  box.append(amount, img, link, status)
  root.replaceChildren(box)

  let payment: PublicPayment | null = null
  let watch: { stop(): void } | null = null
  let done = false

  const render = () => {
    if (!payment) return
    status.dataset.status = payment.status
    status.textContent = m.status[payment.status] ?? payment.status
    const open = outcomeOf(payment.status) === 'open'
    img.hidden = !open
    link.hidden = !open
  }

  const finish = () => {
    if (!payment || done) return
    const o = outcomeOf(payment.status)
    if (o === 'open') return
    done = true
    if (o === 'paid') opts.onSuccess?.(payment)
    else opts.onError?.({ code: `payment_${payment.status}`, message: m.status[payment.status], payment })
  }

  client
    .view()
    .then((p) => {
      payment = p
      const provider = PROVIDER_NAMES[p.provider]?.[locale] ?? p.provider
      amount.textContent = formatAmount(p.amount, p.currency, locale)
      img.src = client.qrUrl()
      const qr = parseQr(p.qrCodeData)
      if (qr.url) {
        link.href = qr.url
        link.textContent = m.openPage
      }
      img.title = fill(m.scan, { provider })
      render()
      if (outcomeOf(p.status) !== 'open') return finish()
      watch = watchPayment({
        client,
        version: p.version,
        onUpdate: (u: Update) => {
          if (!payment) return
          payment = { ...payment, ...u }
          render()
          opts.onUpdate?.(payment)
          finish()
        },
      })
    })
    .catch((e: unknown) => {
      status.textContent = e instanceof ApiError && e.status === 404 ? m.notFound : m.loadError
      done = true
      opts.onError?.({
        code: e instanceof ApiError ? e.code : 'network_error',
        message: e instanceof Error ? e.message : String(e),
      })
    })

  return {
    destroy() {
      watch?.stop()
      root.replaceChildren()
    },
  }
}

export default { mount }
