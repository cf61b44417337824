// OpenTelemetry for the coordinator process. main.ts imports this module first, before anything
// loads @grpc/grpc-js, so that the gRPC instrumentation can patch it and carry each migration's
// trace context into the per-host services (see @ferry/telemetry for the exporter rules).
import { startTelemetry } from '@ferry/telemetry';

export const telemetry = startTelemetry('migration-coordinator');
