// The guest side of control/shutdown, after Linux's drivers/xen/manage.c: the toolstack writes a
// command, the guest acknowledges by writing "" back and acts. "suspend" is the one migration uses
// (shared/reference/xen.md §3.2); poweroff/halt/reboot stop the guest.

import type { GuestXenstore } from './platform';
import { GUEST_PATHS } from './status-reporter';

export interface ShutdownActions {
  suspend(): Promise<void>;
  poweroff(command: string): void;
  log(message: string): void;
  /** True once the guest has stopped: later events are ignored. */
  stopped(): boolean;
}

export function watchShutdown(xenstore: GuestXenstore, actions: ShutdownActions): void {
  let handling = false;
  let eventWhileHandling = false;

  const handle = async (): Promise<void> => {
    const command = await xenstore.read(GUEST_PATHS.controlShutdown);
    if (command === null || command === '' || actions.stopped()) return;
    if (command !== 'suspend' && command !== 'poweroff' && command !== 'halt' && command !== 'reboot') {
      actions.log(`control/shutdown: ignoring unknown command "${command}"`);
      return;
    }
    // Acknowledge first, as manage.c does inside its transaction: the toolstack waits for it.
    await xenstore.write(GUEST_PATHS.controlShutdown, '');
    if (command === 'suspend') await actions.suspend();
    else actions.poweroff(command);
  };

  xenstore.watch(GUEST_PATHS.controlShutdown, () => {
    if (actions.stopped()) return;
    if (handling) {
      eventWhileHandling = true;
      return;
    }
    handling = true;
    void (async () => {
      do {
        eventWhileHandling = false;
        try {
          await handle();
        } catch (err) {
          actions.log(`control/shutdown handling failed: ${(err as Error).message}`);
        }
      } while (eventWhileHandling && !actions.stopped());
      handling = false;
    })();
  });
}
