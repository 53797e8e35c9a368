// Package transfer moves weights between PyTorch files and dira's networks.
//
// It owns:
//
//   - the DiRA README's key renaming and stripping rules (Rules: Classification,
//     Segmentation, UNet), as plain functions on key names, with a check that
//     fails loudly when a file would load nothing (the README's snippet
//     silently loads nothing from the full checkpoint.pth, dira-spec 2.4);
//   - reading torch.save files, flat state_dicts and the official wrapped
//     checkpoints ({'epoch', 'arch', 'state_dict', 'optimizer', ...}), zip and
//     legacy formats (ReadFile);
//   - recognising the official layouts (checkpoint.pth of modes dir/dira and
//     di, best_checkpoint.pth / unet.pth, resnet50.pth, D_checkpoint.pth) and
//     plain torchvision ResNet and smp Unet state_dicts (DetectLayout), and
//     filling model.MoCo and the discriminator from them (ImportMoCo,
//     ImportDiscriminator).
//
// It does not write checkpoints (package stages does) or PyTorch files
// (package export does), and it never trains.
package transfer
