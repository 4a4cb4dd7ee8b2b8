// What an upstream client (S3, Threat Stack) tells about its calls, for metrics: a port, so that
// services report outcomes without knowing Prometheus.

/** Told of every attempt and every retry. */
export interface UpstreamObserver {
  request (outcome: string, seconds: number): void
  retry (): void
}
