// vue-i18n for the hosted page: the locale comes from the browser's language, switchable on the page.

import { createI18n } from 'vue-i18n'
import { messages, type Locale } from './messages'

export { LOCALES, PROVIDER_NAMES, pickLocale, type Locale } from './messages'

export function makeI18n(locale: Locale) {
  return createI18n({ legacy: false, locale, fallbackLocale: 'en', messages })
}
