// OpenTelemetry for the host-agent process. main.ts imports this module first, before anything
// loads @grpc/grpc-js, so that the gRPC instrumentation can patch it (see @ferry/telemetry).
import { startTelemetry } from '@ferry/telemetry';

export const telemetry = startTelemetry('host-agent');
