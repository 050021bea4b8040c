// A verification pool thread that dies before it is ready, every time it is started.
throw new Error('this thread cannot start');
