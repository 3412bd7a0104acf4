// jinliu.js in a DOM: it mounts, follows the payment by polling (jsdom has no EventSource), calls
// onSuccess / onError once, and puts server text in as text, never as markup.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { mount } from '../src/dropin/jinliu'
import type { PublicPayment } from '../src/api/client'

function view(over: Partial<PublicPayment>): PublicPayment {
  return {
    id: 'pay_1',
    orderId: 'ord_1',
    merchantName: 'Tea <b>shop</b>',
    provider: 'kpay',
    method: 'kpay_qr',
    amount: 120,
    currency: 'TWD',
    status: 'pending',
    qrCodeData: '{"url":"http://jinliu.test/sandbox/kpay/pay/J1"}',
    expiresAt: '2026-11-22T08:15:00.000Z',
    version: 1,
    updatedAt: '2026-11-22T08:00:00.000Z',
    livemode: false,
    ...over,
  }
}

function serve(...views: (PublicPayment | number)[]) {
  let i = 0
  const f = vi.fn(async () => {
    const v = views[Math.min(i++, views.length - 1)]
    return typeof v === 'number'
      ? new Response(JSON.stringify({ success: false, error: { code: 'payment_not_found', message: 'no' } }), { status: v })
      : new Response(JSON.stringify({ success: true, data: v }), { status: 200 })
  })
  vi.stubGlobal('fetch', f)
  return f
}

describe('jinliu.js mount', () => {
  beforeEach(() => {
    vi.useFakeTimers()
    document.body.innerHTML = '<div id="pay"></div>'
  })
  afterEach(() => {
    vi.useRealTimers()
    vi.unstubAllGlobals()
  })

  it('shows the amount, the QR image and the pay link, then calls onSuccess once when paid', async () => {
    const fetch = serve(view({}), view({}), view({ status: 'completed', version: 3 }))
    const onSuccess = vi.fn()
    const onError = vi.fn()
    mount('#pay', { paymentId: 'pay_1', clientSecret: 's3cr3t', baseUrl: 'http://jinliu.test', locale: 'en', onSuccess, onError })
    await vi.waitFor(() => expect(document.querySelector('[data-jinliu=status]')?.getAttribute('data-status')).toBe('pending'))
    expect((fetch.mock.calls[0] as unknown[])[0]).toBe('http://jinliu.test/api/payments/pay_1?clientSecret=s3cr3t')
    expect(document.querySelector('img')?.getAttribute('src')).toBe(
      'http://jinliu.test/api/payments/pay_1/qr.svg?clientSecret=s3cr3t',
    )
    expect(document.querySelector('a')?.getAttribute('href')).toBe('http://jinliu.test/sandbox/kpay/pay/J1')
    expect(document.body.textContent).toContain('TWD 120')
    await vi.advanceTimersByTimeAsync(6000)
    await vi.waitFor(() => expect(onSuccess).toHaveBeenCalledTimes(1))
    await vi.advanceTimersByTimeAsync(10000)
    expect(onSuccess).toHaveBeenCalledTimes(1)
    expect(onSuccess.mock.calls[0][0].status).toBe('completed')
    expect(onError).not.toHaveBeenCalled()
    expect(document.querySelector('[data-jinliu=status]')?.textContent).toBe('Paid')
  })

  it('reports an expired payment through onError with a stable code', async () => {
    serve(view({ status: 'expired', version: 2 }))
    const onError = vi.fn()
    mount('#pay', { paymentId: 'pay_1', clientSecret: 's', baseUrl: 'http://jinliu.test', onError })
    await vi.waitFor(() => expect(onError).toHaveBeenCalledTimes(1))
    expect(onError.mock.calls[0][0].code).toBe('payment_expired')
  })

  it('reports a wrong client secret as payment_not_found', async () => {
    serve(404)
    const onError = vi.fn()
    mount('#pay', { paymentId: 'pay_1', clientSecret: 'wrong', baseUrl: 'http://jinliu.test', locale: 'en', onError })
    await vi.waitFor(() => expect(onError).toHaveBeenCalledTimes(1))
    expect(onError.mock.calls[0][0].code).toBe('payment_not_found')
    expect(document.body.textContent).toContain('invalid')
  })

  it('never turns server text into markup or a script link', async () => {
    serve(view({ qrCodeData: '{"url":"javascript:alert(1)"}', currency: '<img src=x onerror=alert(1)>' }))
    mount('#pay', { paymentId: 'pay_1', clientSecret: 's', baseUrl: 'http://jinliu.test' })
    await vi.waitFor(() => expect(document.querySelector('[data-jinliu=status]')?.getAttribute('data-status')).toBe('pending'))
    expect(document.querySelectorAll('img').length).toBe(1)
    expect(document.querySelector('a')?.getAttribute('href')).toBeNull()
  })
})
