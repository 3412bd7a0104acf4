// The payment the page shows: loaded once from the public view, then kept live by the watcher.

import { defineStore } from 'pinia'
import { computed, ref, shallowRef } from 'vue'
import { ApiError, PaymentClient, parseQr, type PublicPayment } from '../api/client'
import { outcomeOf } from '../lib/status'
import { watchPayment, type Transport, type Watch } from '../live/watch'

export type LoadState = 'idle' | 'loading' | 'ready' | 'not_found' | 'error'

export const usePaymentStore = defineStore('payment', () => {
  const payment = ref<PublicPayment | null>(null)
  const state = ref<LoadState>('idle')
  const transport = ref<Transport>('stopped')
  const watch = shallowRef<Watch | null>(null)
  const client = shallowRef<PaymentClient | null>(null)

  const outcome = computed(() => (payment.value ? outcomeOf(payment.value.status) : 'open'))
  const qr = computed(() => parseQr(payment.value?.qrCodeData))

  async function open(paymentId: string, clientSecret: string, base = '') {
    close()
    client.value = new PaymentClient(base, paymentId, clientSecret)
    state.value = 'loading'
    try {
      payment.value = await client.value.view()
      state.value = 'ready'
    } catch (e) {
      state.value = e instanceof ApiError && e.status === 404 ? 'not_found' : 'error'
      return
    }
    if (outcome.value !== 'open') return
    watch.value = watchPayment({
      client: client.value,
      version: payment.value.version,
      onTransport: (t) => (transport.value = t),
      onUpdate: (u) => {
        if (payment.value) payment.value = { ...payment.value, ...u }
      },
    })
  }

  function close() {
    watch.value?.stop()
    watch.value = null
  }

  return { payment, state, transport, outcome, qr, client, open, close }
})
