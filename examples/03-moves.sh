npx billing open-account buyer
npx billing open-account shop
npx billing open-account fees
npx billing credit buyer 1000
npx billing transaction --leg buyer,shop,1000 --leg shop,fees,30 --id order-77-pay
npx billing reverse order-77-pay --id order-77-refund
npx billing balance buyer shop fees
npx billing history fees
