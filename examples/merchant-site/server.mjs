// A tiny merchant site that takes payments through jinliu, with no dependencies (Node 20+).
//
// The merchant's SERVER creates the order and the payment with the secret key; the customer's
// BROWSER gets only the payment id and client secret and mounts jinliu.js. The browser never
// sends an amount, so it cannot change one.
//
//   make run                                   # jinliu on http://127.0.0.1:8080, writes data/demo-credentials.json
//   node examples/merchant-site/server.mjs     # this shop on http://127.0.0.1:3000
//
// Settings (environment): PORT (3000), JINLIU_URL (http://127.0.0.1:8080), JINLIU_SECRET_KEY, or
// JINLIU_CREDENTIALS (default data/demo-credentials.json) to read the demo secret key from.

import { createServer } from 'node:http'
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'

const PORT = Number(process.env.PORT ?? 3000)
const JINLIU = (process.env.JINLIU_URL ?? 'http://127.0.0.1:8080').replace(/\/$/, '')
const SECRET_KEY =
  process.env.JINLIU_SECRET_KEY ??
  JSON.parse(readFileSync(resolve(process.env.JINLIU_CREDENTIALS ?? 'data/demo-credentials.json'), 'utf8')).secretKey

// The catalogue lives on the server: prices are never taken from the browser.
const PRODUCTS = {
  'milk-tea': { name: 'Milk tea x2', amount: '68.00', currency: 'HKD', method: 'octopus_qr' },
  'bubble-tea': { name: '珍珠奶茶 x2', amount: '120', currency: 'TWD', method: 'kpay_qr' },
}

async function jinliu(path, body) {
  const res = await fetch(`${JINLIU}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${SECRET_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  const json = await res.json()
  if (!res.ok) throw new Error(`${path}: ${res.status} ${json?.error?.code}: ${json?.error?.message}`)
  return json.data
}

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

function page(title, body) {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><title>${escape(title)}</title></head>
<body style="font-family:system-ui,sans-serif;max-width:32em;margin:2em auto;padding:0 1em">
<h1>${escape(title)}</h1>${body}</body></html>`
}

// The shop's own CSP: its scripts, plus jinliu's module and API (fetch, SSE, QR image).
const CSP = `default-src 'self'; script-src 'self' ${JINLIU}; connect-src ${JINLIU}; img-src 'self' ${JINLIU}; style-src 'self' 'unsafe-inline'`

const server = createServer(async (req, res) => {
  const url = new URL(req.url ?? '/', `http://${req.headers.host}`)
  const send = (status, type, text, headers = {}) => {
    res.writeHead(status, { 'content-type': type, 'content-security-policy': CSP, ...headers })
    res.end(text)
  }
  try {
    if (req.method === 'GET' && url.pathname === '/') {
      const items = Object.entries(PRODUCTS)
        .map(
          ([id, p]) => `<form method="post" action="/checkout"><input type="hidden" name="product" value="${id}">
<p>${escape(p.name)} — ${p.amount} ${p.currency} <button id="buy-${id}">Buy</button></p></form>`,
        )
        .join('')
      return send(200, 'text/html; charset=utf-8', page('Tea shop', items))
    }
    if (req.method === 'POST' && url.pathname === '/checkout') {
      let form = ''
      for await (const chunk of req) form += chunk
      const product = PRODUCTS[new URLSearchParams(form).get('product') ?? '']
      if (!product) return send(400, 'text/plain', 'unknown product')
      const order = await jinliu('/api/orders', {
        description: product.name,
        amount: product.amount,
        currency: product.currency,
      })
      const payment = await jinliu('/api/payments', {
        orderId: order.id,
        amount: product.amount,
        method: product.method,
      })
      // Only these two values reach the browser.
      return send(
        200,
        'text/html; charset=utf-8',
        page(
          `Pay for ${product.name}`,
          `<div id="pay" data-payment-id="${escape(payment.id)}" data-client-secret="${escape(payment.clientSecret)}"></div>
<p id="result"></p>
<p><small>Or pay on jinliu's hosted page: <a href="${escape(payment.checkoutUrl)}">${escape(payment.checkoutUrl)}</a></small></p>
<script type="module" src="/shop.js"></script>`,
        ),
      )
    }
    if (req.method === 'GET' && url.pathname === '/shop.js') {
      return send(
        200,
        'text/javascript; charset=utf-8',
        `import { mount } from '${JINLIU}/js/jinliu.js'
const el = document.querySelector('#pay')
mount(el, {
  paymentId: el.dataset.paymentId,
  clientSecret: el.dataset.clientSecret,
  onSuccess: (p) => { location.href = '/thanks?order=' + encodeURIComponent(p.orderId) },
  onError: (e) => { document.querySelector('#result').textContent = 'Payment not completed: ' + e.code },
})
`,
      )
    }
    if (req.method === 'GET' && url.pathname === '/thanks') {
      // A real shop confirms with its own server (GET /api/orders/{id} or the payment.completed
      // webhook) before shipping; the browser's word is not proof of payment.
      const order = await fetch(`${JINLIU}/api/orders/${encodeURIComponent(url.searchParams.get('order') ?? '')}`, {
        headers: { authorization: `Bearer ${SECRET_KEY}` },
      }).then((r) => r.json())
      const paid = order?.data?.status === 'paid'
      return send(
        200,
        'text/html; charset=utf-8',
        page(paid ? 'Thank you!' : 'Payment not confirmed', `<p id="order-status">${escape(order?.data?.status ?? 'unknown')}</p>`),
      )
    }
    send(404, 'text/plain', 'not found')
  } catch (e) {
    console.error(e)
    send(502, 'text/plain', 'the payment service is unavailable')
  }
})

server.listen(PORT, '127.0.0.1', () => {
  const { port } = server.address()
  console.log(`merchant site on http://127.0.0.1:${port} (jinliu at ${JINLIU})`)
})
