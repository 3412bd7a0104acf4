// Entry point of the hosted checkout page.

import { createApp } from 'vue'
import { createPinia } from 'pinia'
import 'element-plus/theme-chalk/base.css'
import 'element-plus/theme-chalk/el-button.css'
import 'element-plus/theme-chalk/el-radio-button.css'
import 'element-plus/theme-chalk/el-radio-group.css'
import 'element-plus/theme-chalk/el-result.css'
import 'element-plus/theme-chalk/el-tag.css'
import './style.css'
import App from './App.vue'
import { router } from './router'
import { makeI18n, pickLocale } from './i18n'

createApp(App).use(createPinia()).use(router).use(makeI18n(pickLocale(navigator.language))).mount('#app')
