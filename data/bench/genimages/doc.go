// Command genimages writes synthetic chest-radiograph PNGs (data.DrawRadiograph)
// for the data-pipeline benchmark:
//
//	go run ./data/bench/genimages -out DIR [-n 200] [-size 1024] [-seed 1]
//
// Files are named img0000.png, img0001.png, ... and written with image/png at
// its default compression; run.sh re-encodes them with PIL.
package main
