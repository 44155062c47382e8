npx billing demo            # in another terminal: the original task
npx billing demo            # again: accounts 3 and 4, the same four results
