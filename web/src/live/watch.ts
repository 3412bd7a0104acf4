// Live status of one payment, without any framework, shared by the hosted page, the Vue
// component and jinliu.js: Server-Sent Events first (`paymentUpdate`, `id:` = version), polling
// the public view when EventSource is missing or its stream fails for good.

import { outcomeOf } from '../lib/status'
import type { PaymentClient, PaymentStatus, PaymentUpdate, PublicPayment } from '../api/client'

/** What the watcher reports: any update newer than the last one seen. */
export type Update = Pick<PaymentUpdate, 'status' | 'version'> & Partial<PaymentUpdate> & Partial<PublicPayment>

export type Transport = 'sse' | 'polling' | 'stopped'

export interface WatchOptions {
  client: PaymentClient
  /** The version already shown (from the first load); older and equal updates are dropped. */
  version?: number
  onUpdate: (u: Update) => void
  onTransport?: (t: Transport) => void
  /** Polling period when SSE is unavailable (ms). */
  pollMs?: number
  /** SSE connection errors tolerated before falling back to polling. */
  maxSseErrors?: number
  EventSourceImpl?: typeof EventSource
  fetchImpl?: typeof fetch
}

export interface Watch {
  stop(): void
  readonly transport: Transport
}

const FINAL: ReadonlySet<PaymentStatus> = new Set<PaymentStatus>([
  'completed',
  'failed',
  'expired',
  'cancelled',
  'partially_refunded',
  'refunded',
])

/** Starts watching; the watch stops by itself once the payment reaches a final status. */
export function watchPayment(opts: WatchOptions): Watch {
  const pollMs = opts.pollMs ?? 3000
  const maxErrors = opts.maxSseErrors ?? 3
  const ES = opts.EventSourceImpl ?? (typeof EventSource === 'undefined' ? undefined : EventSource)
  let version = opts.version ?? 0
  let transport: Transport = 'stopped'
  let es: EventSource | null = null
  let timer: ReturnType<typeof setTimeout> | null = null
  let stopped = false
  let sseErrors = 0

  const setTransport = (t: Transport) => {
    if (transport !== t) {
      transport = t
      opts.onTransport?.(t)
    }
  }

  const deliver = (u: Update) => {
    if (stopped || typeof u.version !== 'number' || u.version <= version) return
    version = u.version
    opts.onUpdate(u)
    if (FINAL.has(u.status) || outcomeOf(u.status) !== 'open') stop()
  }

  const pollOnce = async () => {
    try {
      deliver(await opts.client.view(opts.fetchImpl))
    } catch {
      // A failed poll is retried on the next tick; the page keeps the last known status.
    }
  }

  const startPolling = () => {
    if (stopped) return
    es?.close()
    es = null
    setTransport('polling')
    const tick = async () => {
      await pollOnce()
      if (!stopped) timer = setTimeout(tick, pollMs)
    }
    void tick()
  }

  function stop() {
    stopped = true
    es?.close()
    es = null
    if (timer !== null) clearTimeout(timer)
    timer = null
    setTransport('stopped')
  }

  if (ES) {
    es = new ES(opts.client.eventsUrl())
    setTransport('sse')
    es.addEventListener('paymentUpdate', (ev) => {
      try {
        deliver(JSON.parse((ev as MessageEvent).data) as Update)
      } catch {
        // A malformed event is ignored; the next one (or a poll) carries the state.
      }
    })
    // Anything that changed before the stream opened is fetched once; later changes are pushed.
    es.addEventListener('open', () => {
      sseErrors = 0
      void pollOnce()
    })
    es.addEventListener('error', () => {
      if (stopped || !es) return
      sseErrors += 1
      // CLOSED: the server refused the stream (404, wrong type); EventSource will not retry.
      if (es.readyState === 2 || sseErrors >= maxErrors) startPolling()
      else void pollOnce()
    })
  } else {
    startPolling()
  }

  return {
    stop,
    get transport() {
      return transport
    },
  }
}
