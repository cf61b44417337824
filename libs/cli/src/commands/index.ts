import type { Command } from './command';
import { emuHost, emuProbe } from './emu';
import { labDown, labStatus, labUp } from './lab';
import { sim } from './sim';
import { demo } from './demo';
import { bench } from './bench';
import { traceRecord } from './trace';
import { domainCreate, domains, hosts } from './cluster';
import { cancel, migrate, watch } from './migrate';
import { exportDomain } from './export';
import { health } from './health';

export type { Command };

export const COMMANDS: Command[] = [demo, labUp, labStatus, labDown, hosts, domains, domainCreate, migrate, watch, cancel, bench, sim, traceRecord, emuProbe, emuHost, exportDomain, health];
