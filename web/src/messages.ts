// The texts of the checkout page and of jinliu.js in 繁體中文 (台灣), 繁體中文 (香港) and English.
// Plain data, no Vue: jinliu.js uses them without vue-i18n.

export const LOCALES = ['zh-TW', 'zh-HK', 'en'] as const
export type Locale = (typeof LOCALES)[number]

/** The locale for a `navigator.language` value: Hong Kong and Macau Chinese → zh-HK, any other
 *  Chinese → zh-TW (the only other written form offered), everything else → en. */
export function pickLocale(lang: string | undefined | null): Locale {
  const l = (lang ?? '').toLowerCase()
  if (l.startsWith('zh')) return /-(hk|mo)\b/.test(l) ? 'zh-HK' : 'zh-TW'
  return 'en'
}

const en = {
  title: 'Pay {merchant}',
  loading: 'Loading the payment…',
  amount: 'Amount',
  scan: 'Scan the QR code with the {provider} app',
  scanForm: 'Scan to pay on your phone, or continue on this device',
  token: 'Payment code',
  tokenHint: 'Or type this code in the app',
  copy: 'Copy',
  copied: 'Copied',
  openApp: 'Open the {provider} app',
  openPage: 'Continue to payment',
  expiresIn: 'Expires in {time}',
  expiredLocal: 'Time is up',
  status: {
    pending: 'Waiting for payment',
    processing: 'Payment in progress…',
    completed: 'Paid',
    failed: 'Payment failed',
    expired: 'Payment expired',
    cancelled: 'Payment cancelled',
    partially_refunded: 'Paid (partly refunded)',
    refunded: 'Paid (refunded)',
  },
  paidTitle: 'Payment received',
  paidBody: 'Thank you. You may close this page.',
  failedTitle: 'The payment did not go through',
  failedBody: 'No money was taken. Return to the shop to try again.',
  redirecting: 'Returning you to the shop…',
  backToShop: 'Back to the shop',
  notFound: 'This payment link is invalid or has been replaced.',
  loadError: 'The payment could not be loaded. Check your connection and reload.',
  live: 'Live',
  polling: 'Checking every few seconds',
  test: 'Test mode: no real money moves',
  language: 'Language',
}

type Messages = typeof en

const zhTW: Messages = {
  title: '付款給 {merchant}',
  loading: '正在載入付款資料…',
  amount: '金額',
  scan: '請用 {provider} App 掃描 QR Code',
  scanForm: '用手機掃描付款，或在此裝置繼續',
  token: '付款代碼',
  tokenHint: '或在 App 中輸入此代碼',
  copy: '複製',
  copied: '已複製',
  openApp: '開啟 {provider} App',
  openPage: '前往付款',
  expiresIn: '剩餘時間 {time}',
  expiredLocal: '時間已到',
  status: {
    pending: '等待付款',
    processing: '付款處理中…',
    completed: '付款成功',
    failed: '付款失敗',
    expired: '付款已逾時',
    cancelled: '付款已取消',
    partially_refunded: '已付款（部分退款）',
    refunded: '已付款（已退款）',
  },
  paidTitle: '已收到您的付款',
  paidBody: '謝謝您，可以關閉此頁面。',
  failedTitle: '付款未完成',
  failedBody: '沒有扣款。請回到商店重新付款。',
  redirecting: '正在返回商店…',
  backToShop: '返回商店',
  notFound: '此付款連結無效或已被取代。',
  loadError: '無法載入付款資料，請檢查網路後重新整理。',
  live: '即時',
  polling: '每隔幾秒檢查一次',
  test: '測試模式：不會真的扣款',
  language: '語言',
}

const zhHK: Messages = {
  ...zhTW,
  scan: '請用 {provider} App 掃描二維碼',
  scanForm: '用手機掃描付款，或在此裝置繼續',
  token: '付款編號',
  tokenHint: '或在 App 內輸入此編號',
  openApp: '打開 {provider} App',
  expiresIn: '尚餘 {time}',
  status: {
    ...zhTW.status,
    pending: '等待付款',
    processing: '付款處理中…',
    completed: '付款成功',
    expired: '付款已過期',
  },
  paidTitle: '已收到你的付款',
  paidBody: '多謝，你可以關閉此頁。',
  failedTitle: '付款未能完成',
  failedBody: '未有扣款。請返回商店再試。',
  notFound: '此付款連結無效或已被取代。',
  loadError: '未能載入付款資料，請檢查網絡後重新載入。',
  polling: '每隔數秒檢查一次',
  test: '測試模式：不會真正扣款',
}

export const messages: Record<Locale, Messages> = { 'zh-TW': zhTW, 'zh-HK': zhHK, en }

/** Provider names as customers know them. */
export const PROVIDER_NAMES: Record<string, Record<Locale, string>> = {
  octopus: { 'zh-TW': '八達通', 'zh-HK': '八達通', en: 'Octopus' },
  kpay: { 'zh-TW': '客樂得', 'zh-HK': '客樂得', en: 'KPay' },
  tpay: { 'zh-TW': '台灣里', 'zh-HK': '台灣里', en: 'TPay' },
  ecpay: { 'zh-TW': '綠界', 'zh-HK': '綠界', en: 'ECPay' },
}
