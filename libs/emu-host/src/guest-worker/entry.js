// Entry of a guest's worker thread. A worker does not inherit a tsx loader that the parent
// registered through the API (or --import), so register tsx's require hook here and then load the
// TypeScript bootstrap.
require('tsx/cjs/api').register();
require('./bootstrap.ts');
