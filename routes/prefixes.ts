// Where the archive routes live: today's prefix, and the Python service's later one so that
// webhook URLs configured for it keep working.
export const ARCHIVE_PREFIXES = ['/api/v1/s3', '/threatstack-to-s3/api/v1/s3'] as const
