// @ferry/balloon-manager: the balloon-manager process (main.ts) and its gRPC adapter, for in-process use.
export { balloonManagerServer, startBalloonManagerServer, BALLOON_MANAGER_SERVICE_NAME } from './server';
