/**
 * Imported for its effect, first thing in every thread that moves buffers between threads.
 *
 * Why: V8 optimises typed-array code on the assumption that no ArrayBuffer of the thread was
 * ever detached. The first detach (a postMessage transfer) breaks that assumption once, and
 * every function optimised so far is thrown away and compiled again: in a 1M-event HTTP run,
 * ~140 hot functions at the first flush. Detaching a throwaway buffer when the thread starts
 * settles it before anything is optimised.
 */
new ArrayBuffer(8).transfer();
