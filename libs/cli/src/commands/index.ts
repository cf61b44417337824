import type { Command } from './command';
import { emuHost, emuProbe } from './emu';
import { labDown, labStatus, labUp } from './lab';
import { sim } from './sim';

export type { Command };

export const COMMANDS: Command[] = [labUp, labStatus, labDown, sim, emuProbe, emuHost];
