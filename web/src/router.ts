// Routes of the hosted front end. The server answers index.html for every /pay/{paymentId}.

import { createRouter, createWebHistory } from 'vue-router'
import CheckoutPage from './pages/CheckoutPage.vue'

export const router = createRouter({
  history: createWebHistory('/'),
  routes: [{ path: '/pay/:paymentId', name: 'checkout', component: CheckoutPage }],
})
