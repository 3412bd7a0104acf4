// Browser end-to-end tests of the hosted checkout page, in the Debian Chromium driven by
// playwright-core, against the real jinliu binary with its sandboxes. For each provider the
// customer opens the checkout page, follows its link to the sandbox's pay page in a second tab,
// pays (or declines, or lets it expire), and the first tab changes WITHOUT a reload.
// No fixed sleeps: every wait is for a selector or a condition, with a timeout.
//
//   node --test e2e/          (make test runs it after `make web` and `cargo build`)

import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { chromium } from 'playwright-core'
import { startJinliu, startMerchantSite } from './server.mjs'

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const WAIT = 15_000

/** Provider → currency, amount and method, as the README's tour creates them. */
const PROVIDERS = {
  octopus: { currency: 'HKD', amount: '68.00', method: 'octopus_qr' },
  kpay: { currency: 'TWD', amount: '120', method: 'kpay_qr' },
  tpay: { currency: 'TWD', amount: '250', method: 'tpay_redirect' },
  ecpay: { currency: 'TWD', amount: '399', method: 'ecpay_credit' },
}

let jl
let browser

before(async () => {
  jl = await startJinliu()
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  })
})

after(async () => {
  await browser?.close()
  await jl?.stop()
})

/** An order and a payment made the way a merchant's server makes them (secret key). */
async function createPayment(provider, extra = {}) {
  const p = PROVIDERS[provider]
  const order = await jl.api('POST', '/api/orders', {
    description: `e2e ${provider}`,
    amount: p.amount,
    currency: p.currency,
  })
  return jl.api('POST', '/api/payments', { orderId: order.id, amount: p.amount, method: p.method, ...extra })
}

/** The checkout page in a fresh browser context, with CSP violations and reloads recorded. */
async function openCheckout(payment, contextOptions = {}) {
  const context = await browser.newContext({ locale: 'en-US', ...contextOptions })
  const page = await context.newPage()
  const problems = []
  // Console errors count (CSP violations are reported there), except a failed resource load:
  // Chromium logs one when a stream is refused, which the page survives by polling.
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(`console: ${m.text()}`)
  })
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`))
  let loads = 0
  page.on('load', () => (loads += 1))
  await page.goto(payment.checkoutUrl)
  await page.locator('[data-test=status][data-status=pending]').waitFor({ timeout: WAIT })
  // The QR image is drawn by the server; it must have loaded under the page's CSP.
  await page.waitForFunction(
    () => {
      const img = document.querySelector('[data-test=qr]')
      return img instanceof HTMLImageElement && img.complete && img.naturalWidth > 0
    },
    null,
    { timeout: WAIT },
  )
  // A marker that a reload would wipe out.
  await page.evaluate(() => (window.__sameDocument = true))
  return { context, page, problems, loads: () => loads }
}

/** Follows the page's own link to the provider's pay page, in a second tab. */
async function openPayTab(context, page) {
  const [tab] = await Promise.all([context.waitForEvent('page'), page.locator('[data-test=pay-link]').click()])
  await tab.locator('#pay').waitFor({ timeout: WAIT })
  return tab
}

async function expectLive(page, status, outcome, problems, loads, timeout = WAIT) {
  await page.locator(`[data-test=status][data-status=${status}]`).waitFor({ timeout })
  await page.locator(`[data-test=outcome-${outcome}]`).waitFor({ timeout: WAIT })
  assert.equal(await page.evaluate(() => window.__sameDocument), true, 'the page changed without a reload')
  assert.equal(loads(), 1, 'one page load only')
  assert.deepEqual(problems, [], 'no console errors or CSP violations')
}

// The providers run side by side (each test has its own payment and browser context); most of
// the time is spent waiting for notifications, polls and status sync, not on the CPU.
describe('each provider', { concurrency: true }, () => {
  for (const provider of Object.keys(PROVIDERS)) {
    describe(`${provider} checkout`, () => {
      test(`a ${provider} payment paid in the sandbox turns the open checkout page paid without a reload`, async (t) => {
        const payment = await createPayment(provider)
        const { context, page, problems, loads } = await openCheckout(payment)
        const transport = await page.locator('[data-test=transport]').getAttribute('data-transport')
        t.diagnostic(`live status via ${transport}`)
        const amountText = await page.locator('[data-test=amount]').textContent()
        assert.match(amountText ?? '', new RegExp(`${PROVIDERS[provider].currency} ${PROVIDERS[provider].amount}`))
        assert.match((await page.locator('[data-test=merchant]').textContent()) ?? '', /^Pay \S/)
        assert.equal(await page.locator('[data-test=description]').textContent(), `e2e ${provider}`)
        // The payment's TTL is 15 minutes: the countdown starts just under it.
        assert.match((await page.locator('[data-test=countdown]').textContent()) ?? '', /Expires in 1[45]:\d\d/)
        if (payment.paymentToken && !['tpay', 'ecpay'].includes(provider)) {
          assert.equal(await page.locator('[data-test=token]').textContent(), payment.paymentToken)
        }
        const tab = await openPayTab(context, page)
        await tab.locator('#pay').click()
        await tab.locator('#result').waitFor({ timeout: WAIT })
        await expectLive(page, 'completed', 'paid', problems, loads)
        await context.close()
      })

      test(`a ${provider} payment declined in the sandbox turns the open checkout page failed`, async () => {
        const payment = await createPayment(provider)
        const { context, page, problems, loads } = await openCheckout(payment)
        const tab = await openPayTab(context, page)
        await tab.locator('#decline').click()
        await tab.locator('#result').waitFor({ timeout: WAIT })
        await expectLive(page, 'failed', 'failed', problems, loads)
        await context.close()
      })

      test(`a ${provider} payment that expires at the provider turns the open checkout page expired`, async () => {
        const payment = await createPayment(provider)
        const { context, page, problems, loads } = await openCheckout(payment)
        // ECPay and TPay learn of a payment from the customer's form post: open the pay page first.
        await openPayTab(context, page)
        const res = await fetch(`${jl.base}/sandbox/${provider}/simulate`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ paymentId: payment.id, outcome: 'expired' }),
        })
        assert.equal(res.status, 200, await res.text())
        // Octopus and KPay notify the expiry; TPay and ECPay do not, so jinliu's status sync finds
        // it on its next query (at most 5 s later with the settings of server.mjs).
        await expectLive(page, 'expired', 'failed', problems, loads, 30_000)
        await context.close()
      })
    })
  }
})

describe('the page itself', { concurrency: true }, () => {
  test('after paying, the page sends the customer to the successUrl', async () => {
    const successUrl = `${jl.base}/health?returned=paid`
    const payment = await createPayment('octopus', { successUrl })
    const { context, page } = await openCheckout(payment)
    const tab = await openPayTab(context, page)
    await tab.locator('#pay').click()
    await page.waitForURL(successUrl, { timeout: WAIT })
    await context.close()
  })

  test('on a 375 px phone in Hong Kong the page is in zh-HK, fits the screen and offers the app button', async () => {
    const payment = await createPayment('octopus')
    const { context, page, problems } = await openCheckout(payment, {
      locale: 'zh-HK',
      viewport: { width: 375, height: 740 },
      isMobile: true,
      hasTouch: true,
      userAgent: 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148',
    })
    assert.match((await page.locator('[data-test=merchant]').textContent()) ?? '', /付款給/)
    assert.match((await page.locator('[data-test=status]').textContent()) ?? '', /等待付款/)
    const deepLink = await page.locator('[data-test=deep-link]').getAttribute('href')
    assert.match(deepLink ?? '', /^octopus:\/\//)
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)
    assert.ok(overflow <= 0, `no horizontal scrolling at 375 px (overflow ${overflow} px)`)
    await page.locator('[data-test=locale] label', { hasText: 'English' }).click()
    await page.locator('[data-test=status]', { hasText: 'Waiting for payment' }).waitFor({ timeout: WAIT })
    assert.deepEqual(problems, [])
    await context.close()
  })

  test('an update pushed over SSE (event paymentUpdate, id = version) is applied by the page in Chromium', async () => {
    // The stream is played by the test at the network boundary, in the documented format, so
    // this checks the browser side of the contract (EventSource under the page's CSP) on its
    // own; the provider tests above use whatever transport the server offers.
    const payment = await createPayment('kpay')
    const context = await browser.newContext({ locale: 'en-US' })
    const page = await context.newPage()
    await page.route(/\/api\/payments\/[^/]+\/events\?/, (route) =>
      route.fulfill({
        status: 200,
        headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-store' },
        body: `event: paymentUpdate\nid: 99\ndata: ${JSON.stringify({
          paymentId: payment.id,
          orderId: payment.orderId,
          status: 'completed',
          amount: 120,
          currency: 'TWD',
          version: 99,
          updatedAt: new Date().toISOString(),
        })}\n\n`,
      }),
    )
    await page.goto(payment.checkoutUrl)
    // The server still says pending (nobody paid): only the pushed event can show paid.
    await page.locator('[data-test=outcome-paid]').waitFor({ timeout: WAIT })
    await context.close()
  })

  test('a wrong client secret shows that the link is invalid', async () => {
    const payment = await createPayment('kpay')
    const context = await browser.newContext({ locale: 'zh-TW' })
    const page = await context.newPage()
    await page.goto(`${jl.base}/pay/${payment.id}?clientSecret=wrong`)
    await page.locator('[data-test=not-found]', { hasText: '付款連結無效' }).waitFor({ timeout: WAIT })
    await context.close()
  })

  test('the example merchant site sells through jinliu.js on its own origin and confirms the paid order', async () => {
    const shop = await startMerchantSite(jl)
    const context = await browser.newContext()
    try {
      const page = await context.newPage()
      const problems = []
      page.on('pageerror', (e) => problems.push(e.message))
      await page.goto(shop.base)
      await page.locator('#buy-milk-tea').click()
      // The shop's server created the payment; its page mounted jinliu.js from jinliu's origin.
      await page.locator('[data-jinliu=status][data-status=pending]').waitFor({ timeout: WAIT })
      await page.waitForFunction(
        () => {
          const img = document.querySelector('[data-jinliu=qr]')
          return img instanceof HTMLImageElement && img.complete && img.naturalWidth > 0
        },
        null,
        { timeout: WAIT },
      )
      const [tab] = await Promise.all([context.waitForEvent('page'), page.locator('[data-jinliu=pay-link]').click()])
      await tab.locator('#pay').click()
      // onSuccess sends the customer to /thanks, where the shop's server checks the order.
      await page.locator('#order-status', { hasText: 'paid' }).waitFor({ timeout: WAIT })
      assert.deepEqual(problems, [])
    } finally {
      await context.close()
      await shop.stop()
    }
  })
})
