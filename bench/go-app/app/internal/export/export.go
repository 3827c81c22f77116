// Package export writes orders as gzipped CSV.
package export

import (
	"compress/gzip"
	"encoding/csv"
	"io"
	"strconv"
	"time"

	"example.com/svc/internal/model"
)

// Orders writes one row per order line, gzipped.
func Orders(w io.Writer, orders []model.Order) error {
	gz := gzip.NewWriter(w)
	cw := csv.NewWriter(gz)
	if err := cw.Write([]string{"order", "user", "created", "status", "sku", "quantity", "cents", "order_total"}); err != nil {
		return err
	}
	for _, o := range orders {
		total := strconv.FormatInt(o.Total(), 10)
		for _, l := range o.Lines {
			row := []string{o.ID, o.UserID, o.Created.UTC().Format(time.RFC3339), string(o.Status), l.SKU,
				strconv.Itoa(l.Quantity), strconv.FormatInt(l.Cents, 10), total}
			if err := cw.Write(row); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return err
	}
	return gz.Close()
}
