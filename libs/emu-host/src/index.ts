// @ferry/emu-host: the emulated Xen host (one process per host), how to start one, and the probe.
export { spawnEmuHost, type SpawnEmuHostOptions, type EmuHostProcess } from './spawn';
export { EmuHost, DEFAULT_KERNEL_MODULE, type EmuHostOptions } from './emu-host';
export { HypercallServer } from './hypercall-server';
export { Xenstore, type WatchHandle, type WatchCallback } from './xenstore';
export { HostMemory } from './host-memory';
export { parseByteSize } from './byte-size';
export { runEmuHostMain, type RunEmuHostOptions } from './run-host';
export { runProbe, type ProbeOptions, type ProbeResult } from './probe';
export { recordTrace, type TraceRecordOptions, type RecordedTrace } from './trace-record';
