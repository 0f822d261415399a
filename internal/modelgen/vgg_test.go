package modelgen

import "testing"

func TestVGG16Params(t *testing.T) {
	var want int64
	cin := int64(3)
	for _, cout := range vgg16Layers {
		if cout > 0 {
			want += cout*cin*9 + cout
			cin = cout
		}
	}
	want += 25088*4096 + 4096 + 4096*4096 + 4096 + 4096*1000 + 1000
	if want != VGG16Params {
		t.Fatalf("formula gives %d, VGG16Params is %d", want, VGG16Params)
	}
	if got := VGG16(1).NumParams(); got != VGG16Params {
		t.Fatalf("VGG16 has %d parameters, want %d", got, VGG16Params)
	}
}
