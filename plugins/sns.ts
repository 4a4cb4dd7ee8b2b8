// Decorates app.sns: AWS SNS deliveries on the webhook route. Its client (certificate cache,
// connection pool for certificate fetches and confirmations) is closed on close.
import fp from 'fastify-plugin'
import type { Dispatcher } from 'undici'
import type { FastifyError, FastifyRequest, preValidationAsyncHookHandler } from 'fastify'
import { SNSMessageInvalidError } from '../errors/index.js'
import { closeSNSClient, createSNSClient, receiveSNSMessage, type SNSClient } from '../services/sns.js'

/** The header that makes a request an SNS message. */
export const SNS_TYPE_HEADER = 'x-amz-sns-message-type'

export interface SNSDecorator {
  client: SNSClient
  /**
   * A preValidation hook for the webhook route. Without the SNS header it does nothing. With it,
   * the message is checked; a Notification's Message replaces the body, to be validated and
   * archived like any webhook body; a confirmation is answered here.
   */
  unwrap: preValidationAsyncHookHandler
  /** A route error handler: a body that is not JSON at all is, with the SNS header, a malformed SNS message. */
  errorHandler: (err: FastifyError, request: FastifyRequest) => never
}

declare module 'fastify' {
  interface FastifyInstance { sns: SNSDecorator }
}

export interface SNSPluginOptions {
  /** Where certificate fetches and confirmation calls go; default: a pool of the client's own. */
  dispatcher?: Dispatcher
}

const BODY_PARSE_ERRORS = new Set(['FST_ERR_CTP_EMPTY_JSON_BODY', 'FST_ERR_CTP_INVALID_JSON_BODY'])

export default fp<SNSPluginOptions>(async function snsPlugin (app, opts) {
  const client = createSNSClient(app.config.sns, { ...(opts.dispatcher !== undefined && { dispatcher: opts.dispatcher }) })
  app.addHook('onClose', async () => closeSNSClient(client))

  const unwrap: preValidationAsyncHookHandler = async function (request, reply) {
    const header = request.headers[SNS_TYPE_HEADER]
    if (header === undefined) return
    const delivery = await receiveSNSMessage(client, request.body, String(header))
    const sns = { type: delivery.type, topicArn: delivery.topicArn, messageId: delivery.messageId }
    if (delivery.type === 'Notification') {
      request.log.debug({ sns }, 'SNS notification verified')
      request.body = delivery.body
      request.bodyText = delivery.text
      return
    }
    request.log.info({ sns }, delivery.type === 'SubscriptionConfirmation' ? 'SNS subscription confirmed' : 'SNS subscription ended')
    return reply.send({ success: true, archived: [], pending: [] })
  }

  function errorHandler (err: FastifyError, request: FastifyRequest): never {
    if (request.headers[SNS_TYPE_HEADER] !== undefined && BODY_PARSE_ERRORS.has(err.code)) {
      throw new SNSMessageInvalidError('SNS message must be a JSON object', { cause: err })
    }
    // Everything else goes on to the application's error handler.
    throw err
  }

  app.decorate('sns', { client, unwrap, errorHandler })
}, { name: 'sns', decorators: { fastify: ['config'] }, fastify: '5.x' })
