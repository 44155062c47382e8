npx billing open-account alice
npx billing open-account bob
npx billing credit alice 1000
npx billing debit alice 250
npx billing transfer alice bob 111 --id order-42-pay
npx billing hold alice 50 --hold order-7 --ttl 600
npx billing capture order-7 30 --to bob
npx billing hold alice 20 --hold order-8
npx billing release order-8
npx billing set-limits bob --overdraft-limit 100 --max-balance 5000
npx billing freeze bob
npx billing debit bob 1
npx billing unfreeze bob
npx billing open-account temp
npx billing close-account temp
npx billing balance alice bob
npx billing balance alice --at 21
npx billing history alice --limit 3
npx billing watch --after 0 --count 2 --json
npx billing verify
