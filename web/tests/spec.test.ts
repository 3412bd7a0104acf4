// The typed client against the committed OpenAPI description (docs/api-spec.yaml, generated
// from the server's code): field names, required fields, status values and the routes used.
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { PUBLIC_PAYMENT_FIELDS } from '../src/api/client'

const spec = parse(readFileSync(resolve(__dirname, '../../docs/api-spec.yaml'), 'utf8'))
const schemas = spec.components.schemas

describe('the client matches docs/api-spec.yaml', () => {
  it('knows exactly the fields of the public view', () => {
    const fields = Object.keys(schemas.PublicPaymentDto.properties).sort()
    expect([...PUBLIC_PAYMENT_FIELDS].sort()).toEqual(fields)
  })

  it('reads checkoutUrl and clientSecret from the merchant view', () => {
    const fields = Object.keys(schemas.PaymentDto.properties)
    expect(fields).toContain('checkoutUrl')
    expect(fields).toContain('clientSecret')
  })

  it('calls routes the server has', () => {
    for (const path of ['/api/payments/{id}', '/api/payments/{id}/qr.svg', '/api/payments/{id}/events']) {
      expect(spec.paths[path]?.get, path).toBeDefined()
    }
  })
})
