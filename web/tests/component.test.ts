// The Vue component for merchant sites: it shows the payment it was given and emits success or
// error once; it never creates a payment itself.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { flushPromises, mount } from '@vue/test-utils'
import OctopusPayment from '../src/components/OctopusPayment.vue'
import type { PublicPayment } from '../src/api/client'

function view(status: PublicPayment['status'], version: number): PublicPayment {
  return {
    id: 'pay_1',
    orderId: 'ord_1',
    provider: 'octopus',
    method: 'octopus_qr',
    amount: 68,
    currency: 'HKD',
    status,
    qrCodeData: '{"url":"http://jinliu.test/sandbox/octopus/oos/payment/?token=t"}',
    expiresAt: '2026-11-22T08:15:00.000Z',
    version,
    updatedAt: '2026-11-22T08:00:00.000Z',
    livemode: false,
  }
}

describe('OctopusPayment', () => {
  beforeEach(() => vi.useFakeTimers())
  afterEach(() => {
    vi.useRealTimers()
    vi.unstubAllGlobals()
  })

  it('shows the QR code of the given payment and emits success once when it is paid', async () => {
    const views = [view('pending', 1), view('pending', 1), view('completed', 3)]
    const fetch = vi.fn(async (_url: string, init?: RequestInit) => {
      expect(init?.method ?? 'GET').toBe('GET')
      return new Response(JSON.stringify({ success: true, data: views.shift() ?? view('completed', 3) }))
    })
    vi.stubGlobal('fetch', fetch)
    const w = mount(OctopusPayment, {
      props: { paymentId: 'pay_1', clientSecret: 'sec', baseUrl: 'http://jinliu.test', locale: 'en' },
    })
    await flushPromises()
    expect(w.find('img').attributes('src')).toBe('http://jinliu.test/api/payments/pay_1/qr.svg?clientSecret=sec')
    expect(w.text()).toContain('HKD 68.00')
    await vi.advanceTimersByTimeAsync(7000)
    await flushPromises()
    expect(w.emitted('success')).toHaveLength(1)
    expect(w.emitted('error')).toBeUndefined()
    expect(w.find('[data-status]').attributes('data-status')).toBe('completed')
    expect(w.find('img').exists()).toBe(false)
    for (const [url] of fetch.mock.calls) expect(url).not.toMatch(/\/api\/payments(\?|$)/)
  })

  it('emits error for a declined payment', async () => {
    vi.stubGlobal('fetch', async () => new Response(JSON.stringify({ success: true, data: view('failed', 2) })))
    const w = mount(OctopusPayment, { props: { paymentId: 'pay_1', clientSecret: 'sec', locale: 'zh-HK' } })
    await flushPromises()
    expect(w.emitted('error')?.[0]?.[0]).toMatchObject({ code: 'payment_failed' })
    expect(w.text()).toContain('付款失敗')
  })
})
