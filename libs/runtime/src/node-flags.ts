// The V8 flags every Ferry process runs with (the lab passes them, docker-compose.yml and k8s/
// write them into each command; test/deploy checks that they agree).
//
// A migration's downtime window crosses eight processes one after another, and a full garbage
// collection in any of them stops that process for 3–40 ms. With V8's defaults a page-streamer ran
// one about every two migrations' worth of pages: its live heap is ~36 MB, and V8 sizes the old
// generation's limit to just above it whenever the process looks idle (the memory reducer), so a
// round's short-lived buffers and promises that survive two scavenges soon reach it. A larger
// starting limit and no idle-time shrinking make full collections rare (2–3 per service over 16
// web migrations, against ~30 per page-streamer). The cost is memory: about +45 MB resident for a
// page-streamer and +10–30 MB for the others (BENCHMARKS.md §3). Neither flag can be set once the
// process runs (v8.setFlagsFromString is too late for the heap's configuration), and Node accepts
// neither in NODE_OPTIONS, so they are part of the command line.
export const SERVICE_NODE_FLAGS: readonly string[] = ['--initial-old-space-size=128', '--no-memory-reducer'];
