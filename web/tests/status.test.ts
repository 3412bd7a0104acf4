import { describe, expect, it } from 'vitest'
import { exitUrl, formatAmount, formatCountdown, isMobile, outcomeOf, secondsLeft } from '../src/lib/status'
import { pickLocale } from '../src/messages'
import { parseQr } from '../src/api/client'

describe('outcomes', () => {
  it('treats pending and processing as open, refunds as paid, everything else as failed', () => {
    expect(outcomeOf('pending')).toBe('open')
    expect(outcomeOf('processing')).toBe('open')
    expect(outcomeOf('completed')).toBe('paid')
    expect(outcomeOf('partially_refunded')).toBe('paid')
    expect(outcomeOf('refunded')).toBe('paid')
    for (const s of ['failed', 'expired', 'cancelled'] as const) expect(outcomeOf(s)).toBe('failed')
  })

  it('sends the customer to the url of the outcome, and only to http(s) urls', () => {
    const urls = { successUrl: 'https://shop.example/thanks', failureUrl: 'https://shop.example/retry' }
    expect(exitUrl('paid', urls)).toBe('https://shop.example/thanks')
    expect(exitUrl('failed', urls)).toBe('https://shop.example/retry')
    expect(exitUrl('open', urls)).toBeNull()
    expect(exitUrl('paid', { successUrl: 'javascript:alert(1)' })).toBeNull()
    expect(exitUrl('failed', {})).toBeNull()
  })
})

describe('countdown', () => {
  it('counts whole seconds down to zero and never below', () => {
    const now = Date.parse('2026-11-22T08:00:00.000Z')
    expect(secondsLeft('2026-11-22T08:15:00.000Z', now)).toBe(900)
    expect(secondsLeft('2026-11-22T08:00:00.999Z', now)).toBe(0)
    expect(secondsLeft('2026-11-22T07:59:00.000Z', now)).toBe(0)
    expect(secondsLeft('not a date', now)).toBe(0)
  })

  it('formats minutes and seconds, and hours when there are any', () => {
    expect(formatCountdown(900)).toBe('15:00')
    expect(formatCountdown(65)).toBe('1:05')
    expect(formatCountdown(0)).toBe('0:00')
    expect(formatCountdown(3725)).toBe('1:02:05')
  })
})

describe('money', () => {
  it('shows each currency with its own decimals', () => {
    expect(formatAmount(68, 'HKD', 'en')).toBe('HKD 68.00')
    expect(formatAmount(1200, 'TWD', 'en')).toBe('TWD 1,200')
    expect(formatAmount(0.1, 'HKD', 'zh-HK')).toBe('HKD 0.10')
  })
})

describe('language', () => {
  it('picks zh-HK for Hong Kong and Macau, zh-TW for other Chinese, en otherwise', () => {
    expect(pickLocale('zh-HK')).toBe('zh-HK')
    expect(pickLocale('zh-Hant-HK')).toBe('zh-HK')
    expect(pickLocale('zh-MO')).toBe('zh-HK')
    expect(pickLocale('zh-TW')).toBe('zh-TW')
    expect(pickLocale('zh')).toBe('zh-TW')
    expect(pickLocale('en-GB')).toBe('en')
    expect(pickLocale('ja')).toBe('en')
    expect(pickLocale(undefined)).toBe('en')
  })
})

describe('the customer url', () => {
  it('is read from qrCodeData and survives bad JSON', () => {
    expect(parseQr('{"url":"https://p.example/x","deepLink":"octopus://pay"}').deepLink).toBe('octopus://pay')
    expect(parseQr('not json')).toEqual({})
    expect(parseQr('[1,2]').url).toBeUndefined()
  })

  it('keeps only http(s) page links and app links, never script or data urls', () => {
    expect(parseQr('{"url":"javascript:alert(1)"}').url).toBeUndefined()
    expect(parseQr('{"url":"data:text/html,x"}').url).toBeUndefined()
    expect(parseQr('{"deepLink":"JavaScript:alert(1)"}').deepLink).toBeUndefined()
    expect(parseQr('{"deepLink":"octopus://payment?token=a"}').deepLink).toBe('octopus://payment?token=a')
    expect(parseQr('{"url":"http://127.0.0.1:8080/sandbox/kpay/pay/x"}').url).toBe('http://127.0.0.1:8080/sandbox/kpay/pay/x')
    expect(parseQr(null)).toEqual({})
  })

  it('offers the app button on phones only', () => {
    expect(isMobile({ userAgent: 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148' })).toBe(true)
    expect(isMobile({ userAgent: 'Mozilla/5.0 (Linux; Android 14) Mobile Safari' })).toBe(true)
    expect(isMobile({ userAgent: 'Mozilla/5.0 (X11; Linux x86_64) Chrome/140' })).toBe(false)
  })
})
